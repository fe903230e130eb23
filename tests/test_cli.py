"""The command line, run in-process through typer's CliRunner."""

from __future__ import annotations

import logging
import re
import shutil
import tempfile

import pytest
from typer.testing import CliRunner

from spacy_longformer.cli import app


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One default demo (trains until dev F 1.0) over 1,200 words, run in a fresh folder with its
    own TMPDIR: (result, folder, temp folder, what it logged as warnings)."""
    folder = tmp_path_factory.mktemp("demo")
    tmp = folder / "tmp"
    tmp.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setenv("TMPDIR", str(tmp))
        patch.setattr(tempfile, "tempdir", None)
        caught = _Keep(logging.WARNING)
        logging.getLogger("spacy_longformer").addHandler(caught)
        try:
            result = CliRunner().invoke(app, ["demo", "--words", "1200"])
        finally:
            logging.getLogger("spacy_longformer").removeHandler(caught)
    return result, folder, tmp, caught.messages


class _Keep(logging.Handler):
    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_demo_trains_ner_and_reads_a_long_document(demo_run):
    result, _, _, caught = demo_run
    assert result.exit_code == 0, result.output
    # A user's first command warns of nothing in its own settings (LFW codes).
    assert not [message for message in caught if "[LFW" in message], caught
    text = result.output
    flat = " ".join(text.split())  # wasabi wraps long lines
    found = re.search(
        r"Windows used: (\d+)\. Entities found: (\d+) \((\d+) planted\), (\d+) of them past", flat
    )
    assert found, text
    windows, n_found, n_planted, n_past = map(int, found.groups())
    assert windows > 1 and n_found == n_planted > 0 and n_past > 0
    # the table shows entities read in the last windows, not only the first
    rows = re.findall(r"^(?:\S+ )*\S+\s+(?:PERSON|ORG)\s+\d+-\d+\s+\d+-\d+\s+(\d+)\s+yes", text, re.M)
    assert len(rows) == n_found and max(map(int, rows)) >= windows - 2
    f_score = float(re.search(r"^all\s+\S+\s+\S+\s+(\S+)", text, re.M).group(1))
    assert f_score >= 0.9, text  # 1.00 here; a margin for other CPUs' rounding
    assert "Trained" in flat and "All vectors finite" in flat


def test_demo_writes_the_page_here_and_cleans_up(demo_run):
    result, folder, tmp, _ = demo_run
    page = (folder / "longformer-demo.html").read_text(encoding="utf8")
    assert page.startswith("<!DOCTYPE html>") and page.count("<mark") >= 2
    assert "PERSON" in page and "ORG" in page
    assert str(folder / "longformer-demo.html") in result.output.replace("\n", "")
    assert list(tmp.iterdir()) == []


@pytest.mark.parametrize("html", [None, "pages/demo.html"])
def test_demo_fails_cleanly_when_training_learns_nothing(tmp_path, html):
    out = tmp_path / "out"
    page = tmp_path / html if html else out / "longformer-demo.html"
    args = ["demo", "--words", "300", "--steps", "1", "--out", str(out)]
    result = CliRunner().invoke(app, args + (["--html", str(page)] if html else []))
    assert result.exit_code == 1, result.output
    assert "try more --steps or another --seed" in result.output
    assert page.is_file()
    assert {"checkpoint", "pipeline"} <= {p.name for p in out.iterdir()}
    # Imported here: spacy loads torch, and the demo sets OpenMP's wait policy before torch loads
    # (on busy cores, spinning threads made training ten times slower).
    import spacy

    doc = spacy.load(out / "pipeline")("Alice met the board.")
    assert doc._.longformer.n_pieces > len(doc) and doc.tensor.shape == (len(doc), 64)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in (out / "checkpoint").iterdir()
    }


def test_quick_runs_the_encoder_and_reports(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["demo", "--quick", "--words", "400", "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = result.output
    for expected in ("Step 1/4", "Step 4/4", "attention_window", "last_hidden_state shape", "are finite"):
        assert expected in text, f"{expected!r} missing from demo output:\n{text}"
    assert "NaN" not in text
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in (out / "checkpoint").iterdir()
    }


def test_quick_cleans_up_without_out(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    result = CliRunner().invoke(app, ["demo", "--quick", "--words", "50"])
    assert result.exit_code == 0, result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args, message",
    [
        (["--words", "0"], "--words"),
        (["--words", "19"], "--words"),
        (["--steps", "0"], "--steps"),
        (["--quick", "--html", "x.html"], "--quick trains nothing"),
        (["--quick", "--steps", "3"], "--quick trains nothing"),
    ],
)
def test_demo_rejects_bad_options(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["demo", *args])
    assert result.exit_code != 0
    assert message in result.output
    assert list(tmp_path.iterdir()) == []


def test_help_lists_demo():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "demo" in result.output


@pytest.mark.parametrize(
    "args, code, fix",
    [
        (["--format", "onnx", "--dtype", "bf16"], "LF202", "--format torch-export --dtype bf16"),
        (["--format", "torch-export", "--quantize", "int8"], "LF203", "--format onnx --quantize int8"),
    ],
)
def test_export_refuses_what_its_format_cannot_hold(tiny_checkpoint, tmp_path, args, code, fix):
    """No bf16 ONNX (onnxruntime's CPU provider can't run one) and no int8 torch.export: said up
    front with the option that does it, before anything is exported or written."""
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["export", str(tiny_checkpoint), str(out), *args])
    assert result.exit_code == 1
    flat = " ".join(result.output.split())
    assert code in flat and fix in flat, flat
    assert not out.exists()


def test_export_torch_from_an_onnx_only_encoder_names_the_fix(tiny_checkpoint, tmp_path):
    """An encoder saved with backend = "onnxruntime" holds a graph but no torch weights."""
    folder = tmp_path / "encoder"
    folder.mkdir()
    shutil.copy(tiny_checkpoint / "config.json", folder)
    (folder / "model.onnx").write_bytes(b"")
    result = CliRunner().invoke(
        app, ["export", str(folder), str(tmp_path / "out"), "--format", "torch-export"]
    )
    assert result.exit_code == 1
    flat = " ".join(result.output.split())
    assert "LF206" in flat and "--format onnx" in flat, flat


def test_export_torch_on_a_torch_without_dynamic_dims_says_to_upgrade(tiny_checkpoint, tmp_path, monkeypatch):
    """torch < 2.5 has no ``Dim.DYNAMIC``: its torch.export would fix the sequence axis."""
    import torch

    if hasattr(torch.export.Dim, "DYNAMIC"):
        monkeypatch.delattr(torch.export.Dim, "DYNAMIC")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["export", str(tiny_checkpoint), str(out), "--format", "torch-export"])
    assert result.exit_code == 1
    flat = " ".join(result.output.split())
    assert "LF208" in flat and "torch >= 2.5" in flat and "--format onnx" in flat, flat
    assert not (out / "model.pt2").exists()
