"""benchmarks/deploy.py end to end at its smallest: every configuration timed and sized, ratios that
follow from the timings, the plot, and the task table (one update per task: the scores mean nothing,
the plumbing is what counts). ``--same-process`` spares five interpreter start-ups (~5 s each)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("spacy_transformers")
pytest.importorskip("matplotlib")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "deploy.py"
CONFIGURATIONS = [
    "torch float32",
    "torch bfloat16",
    "onnxruntime float32",
    "onnxruntime int8",
    "spacy-transformers",
]
ENCODERS = CONFIGURATIONS[:4]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("deploy")
    command = [
        sys.executable,
        str(SCRIPT),
        "--size", "tiny",
        "--docs", "2",
        "--pieces", "120",
        "--repeats", "2",
        "--threads", "1",
        "--task-train", "4",
        "--task-dev", "2",
        "--task-words", "20",
        "--task-steps", "1",
        "--same-process",
        "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return out, json.loads((out / "deploy-cpu.json").read_text())


def test_every_configuration_is_timed_and_sized(report):
    out, data = report
    results = {r["configuration"]: r for r in data["speed"]}
    assert list(results) == CONFIGURATIONS
    for r in results.values():
        assert "error" not in r, r
        assert r["docs_per_s"] > 0 and r["pieces_per_s"] > 0 and r["seconds"] > 0
        assert r["pipeline_bytes"] > 0 and r["weights_bytes"] > 0
        assert r["timed_docs"] == 2 and 1 <= r["passes"] <= 2
        assert math.isclose(r["docs_per_s"], r["timed_docs"] / r["seconds"])
    for name in ("onnxruntime float32", "onnxruntime int8"):  # the graph, inside the saved pipeline
        assert results[name]["weights_file"] == "longformer_encoder/encoder/model.onnx"
    # int8 weights are stored as int8: the smallest graph and pipeline
    assert results["onnxruntime int8"]["weights_bytes"] < results["onnxruntime float32"]["weights_bytes"]
    assert results["onnxruntime int8"]["pipeline_bytes"] < results["torch float32"]["pipeline_bytes"]
    assert (out / "deploy-cpu.png").stat().st_size > 0


def test_ratios_follow_from_the_timings(report):
    _, data = report
    results = {r["configuration"]: r for r in data["speed"]}
    peer, baseline = results["spacy-transformers"], results["torch float32"]
    for r in results.values():
        assert math.isclose(r["docs_per_s_vs_peer"], r["docs_per_s"] / peer["docs_per_s"])
        assert math.isclose(r["docs_per_s_vs_float32"], r["docs_per_s"] / baseline["docs_per_s"])
        assert math.isclose(r["size_vs_peer"], r["pipeline_bytes"] / peer["pipeline_bytes"])
        assert math.isclose(r["size_vs_float32"], r["pipeline_bytes"] / baseline["pipeline_bytes"])
    assert baseline["docs_per_s_vs_float32"] == 1.0 and peer["docs_per_s_vs_peer"] == 1.0


def test_meta_records_the_run(report):
    _, data = report
    meta = data["meta"]
    assert "--size tiny" in meta["command"] and len(meta["loadavg_start"]) == 3
    assert meta["speed"]["model"]["layers"] == 2 and len(meta["speed"]["pieces_per_doc"]) == 2


def test_task_scores_for_every_encoder(report):
    out, data = report
    tasks = data["tasks"]["by_task"]
    assert list(tasks) == ["textcat", "ner", "qa"]
    for task in tasks.values():
        assert list(task["scores"]) == ENCODERS
        for name in ENCODERS[1:]:
            for key, change in task["change"][name].items():
                assert math.isclose(change, task["scores"][name][key] - task["scores"]["torch float32"][key])
            assert 0 <= task["predictions_changed"][name] <= task["dev_docs"]
    assert {"cats_score", "accuracy"} <= set(tasks["textcat"]["scores"]["onnxruntime int8"])
    assert "ents_f" in tasks["ner"]["scores"]["torch bfloat16"]
    assert {"qa_exact", "qa_f1"} <= set(tasks["qa"]["scores"]["onnxruntime float32"])
    markdown = (out / "deploy-cpu.md").read_text()
    assert "| spacy-transformers |" in markdown and "| qa (2) | qa_exact |" in markdown
