"""`annotate` on Ray Data: the shards hold what `nlp.pipe` gives, bad records are listed, reruns
resume without duplicates, and neither a killed driver nor a killed actor loses a record.

The default run starts one local Ray (2 CPUs, its files under pytest's temp folder) for this
module and annotates one corpus with 2 actors; the rest checks errors raised before Ray starts.
Killing actors and drivers takes minutes of restarts: those tests are `slow`. Subprocesses run in a
session of their own, and every process of that session is killed when they time out or once the
test is done with them (Ray's workers leave the driver's process group, not its session).
"""

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import spacy
import srsly
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from typer.testing import CliRunner

from spacy_longformer.annotate import MANIFEST, _ShardAnnotator, annotate, plan_input, read_annotated
from spacy_longformer.cli import app
from spacy_longformer.data import synthetic_ner
from spacy_longformer.random_checkpoint import synthetic_text

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason='needs "ray[data]"')
LISTENER = {"@architectures": "spacy-longformer.LongformerListener.v1", "upstream": "*"}
ACTOR_TASK = b"ray::MapWorker(MapBatches(_ShardAnnotator)).submit"
# Lengths in words: empty, short, and past the tiny checkpoint's 126-piece window.
LENGTHS = [0, 3, 12, 40, 90, 160, 320]
# The corpus: JSONL records (plus the bad lines below), DocBin docs, .txt files (the last one not
# UTF-8), annotated in shards of SHARD_SIZE records.
N_JSONL, N_DOCBIN, N_TXT, SHARD_SIZE = 130, 40, 35, 30
N_RECORDS = N_JSONL + 5 + N_DOCBIN + N_TXT  # 5 bad JSONL lines (and a blank one)
N_GOOD = N_JSONL + N_DOCBIN + N_TXT - 1


@pytest.fixture(scope="module")
def saved_pipeline(tiny_checkpoint, tmp_path_factory) -> Path:
    """longformer_encoder with longformer_ner and longformer_textcat listening, trained 2 steps."""
    nlp = spacy.blank("en")
    nlp.add_pipe("longformer_encoder", config={"model": {"name": str(tiny_checkpoint)}})
    nlp.add_pipe("longformer_ner", config={"model": {"encoder": LISTENER}})
    nlp.add_pipe("longformer_textcat", config={"model": {"encoder": LISTENER}})
    references = synthetic_ner(nlp, 4, n_words=60, seed=0)
    for i, reference in enumerate(references):
        reference.cats = {"A": float(i % 2), "B": float(1 - i % 2)}
    examples = [Example(nlp.make_doc(reference.text), reference) for reference in references]
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(2):
        nlp.update(examples, sgd=optimizer)
    path = tmp_path_factory.mktemp("annotate") / "pipeline"
    nlp.to_disk(path)
    return path


def _text(i: int) -> str:
    return synthetic_text(LENGTHS[i % len(LENGTHS)], seed=i)


def _write_jsonl(path: Path, n: int, *, bad: dict[int, bytes] | None = None) -> None:
    """``n`` records ``{"text", "meta", "id"}``; ``bad`` puts raw lines after record i."""
    with path.open("wb") as file:
        for i in range(n):
            record = {"text": _text(i), "meta": {"i": i, "tags": ["x"]}, "id": f"doc-{i}"}
            file.write(json.dumps(record).encode("utf8") + b"\n")
            file.write((bad or {}).get(i, b""))


BAD_LINES = {
    # After record i (line i + 1, plus one per earlier bad or blank line): what the manifest says.
    5: (b"{not json\n", "invalid JSON"),
    30: (b'{"body": "no text here"}\n', 'no "text" key'),
    31: (b"\n", None),  # blank: not a record
    77: (b'{"text": 42}\n', '"text" must be a string, got int'),
    120: (b'["a", "list"]\n', "expected a JSON object"),
    125: (b'{"text": "caf\xe9"}\n', "not UTF-8"),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, saved_pipeline) -> Path:
    """A folder of every input format: JSONL with bad lines, a DocBin, .txt files, and files to
    skip (another suffix, a hidden file)."""
    root = tmp_path_factory.mktemp("corpus")
    _write_jsonl(root / "a.jsonl", N_JSONL, bad={i: line for i, (line, _) in BAD_LINES.items()})
    nlp = spacy.load(saved_pipeline)
    docs = [nlp.make_doc(_text(1000 + i)) for i in range(N_DOCBIN)]
    for i, doc in enumerate(docs):
        doc.user_data["meta"] = {"from": "docbin", "i": i}
    DocBin(docs=docs, store_user_data=True).to_disk(root / "b.spacy")
    (root / "c").mkdir()
    for i in range(N_TXT):
        (root / "c" / f"{i:03d}.txt").write_text(_text(2000 + i), encoding="utf8")
    (root / "c" / f"{N_TXT - 1:03d}.txt").write_bytes(b"caf\xe9")
    (root / "notes.md").write_text("# not input", encoding="utf8")
    (root / ".hidden.jsonl").write_text('{"text": "skip me"}\n', encoding="utf8")
    return root


def _expected_records(corpus: Path) -> list[tuple[str, int, str]]:
    """(source, line, text) of every good record of ``corpus``, in input order."""
    records, line = [], 0
    for i in range(N_JSONL):
        line += 1
        records.append(("a.jsonl", line, _text(i)))
        line += i in BAD_LINES
    records += [("b.spacy", i + 1, _text(1000 + i)) for i in range(N_DOCBIN)]
    records += [(f"c/{i:03d}.txt", 1, _text(2000 + i)) for i in range(N_TXT - 1)]
    return records


def _annotations(docs: list[Doc]) -> list[tuple]:
    return [
        (doc._.longformer.token_vectors(), [(e.start, e.end, e.label_) for e in doc.ents], dict(doc.cats))
        for doc in docs
    ]


def _assert_same(got: list[Doc], expected: list[Doc]) -> None:
    assert [doc.text for doc in got] == [doc.text for doc in expected]
    for (vectors, ents, cats), (vectors0, ents0, cats0) in zip(
        _annotations(got), _annotations(expected), strict=True
    ):
        np.testing.assert_allclose(vectors, vectors0, atol=1e-5)
        assert ents == ents0
        assert cats.keys() == cats0.keys()
        for label in cats:
            assert cats[label] == pytest.approx(cats0[label], abs=1e-5)


def _oracle(nlp: spacy.Language, corpus: Path) -> list[Doc]:
    """What `nlp.pipe` gives in this process for the good records of ``corpus``."""
    docs = [nlp.make_doc(text) for source, _, text in _expected_records(corpus) if source != "b.spacy"]
    docbin = list(DocBin().from_disk(corpus / "b.spacy").get_docs(nlp.vocab))
    docs = docs[:N_JSONL] + docbin + docs[N_JSONL:]
    return list(nlp.pipe(docs, batch_size=16))


def _ids(docs: list[Doc]) -> list[tuple[str, int]]:
    return [(doc.user_data["source"], doc.user_data["line"]) for doc in docs]


@pytest.fixture(scope="module")
def ray_session(tmp_path_factory):
    """One local Ray for the module, its files and spilled objects under pytest's temp folder."""
    ray = pytest.importorskip("ray")
    # A short path: Ray's sockets live under it, and a socket path has at most 107 bytes.
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=256 * 2**20,
        _temp_dir=str(tmp_path_factory.mktemp("ray")),
    )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def annotated(ray_session, saved_pipeline, corpus, tmp_path_factory) -> tuple[Path, dict, float]:
    output = tmp_path_factory.mktemp("annotated") / "out"
    start = time.perf_counter()
    manifest = annotate(saved_pipeline, corpus, output, num_actors=2, shard_size=SHARD_SIZE, batch_size=8)
    return output, manifest, time.perf_counter() - start


# --- Planning (no Ray) -------------------------------------------------------------------------------


def test_plan_cuts_files_into_shards_of_records_in_path_order(corpus):
    plan = plan_input(corpus, shard_size=30)
    # A JSONL shard starts at every 30th non-blank line (bad lines are records too); notes.md and
    # the hidden file are not input.
    lines = (corpus / "a.jsonl").read_bytes().split(b"\n")
    starts = [number for number, line in enumerate(lines, start=1) if line.strip()][::30]
    assert [(s.kind, s.sources[0], s.first_line, s.n_records) for s in plan.shards] == [
        *[("jsonl", "a.jsonl", start, 30) for start in starts[:-1]],
        ("jsonl", "a.jsonl", starts[-1], N_JSONL + 5 - 4 * 30),
        ("spacy", "b.spacy", 1, 30),
        ("spacy", "b.spacy", 31, N_DOCBIN - 30),
        ("txt", "c/000.txt", 1, 30),
        ("txt", "c/030.txt", 1, N_TXT - 30),
    ]
    assert plan.shards[-2].sources == tuple(f"c/{i:03d}.txt" for i in range(30))
    assert plan.n_records == N_JSONL + 5 + N_DOCBIN + N_TXT
    assert plan_input(corpus, shard_size=40).fingerprint == plan.fingerprint


def test_plan_keeps_blank_lines_out_of_the_records(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('\n{"text": "a"}\n\n\n{"text": "b"}\n  \n{"text": "c"}', encoding="utf8")
    shards = plan_input(path, shard_size=2).shards
    # The first shard starts at the top of the file; a blank line goes with the record before it.
    assert [(s.first_line, s.n_records) for s in shards] == [(1, 2), (7, 1)]
    before = plan_input(path, shard_size=2).fingerprint
    path.write_text('\n{"text": "a"}\n\n\n{"text": "B"}\n  \n{"text": "c"}', encoding="utf8")
    assert plan_input(path, shard_size=2).fingerprint != before


# --- Errors, before Ray starts -----------------------------------------------------------------------


@needs_ray
@pytest.mark.parametrize(
    "option, value, match",
    [
        ("num_actors", 0, r"LF186.*`--num-actors` must be an int >= 1, got 0"),
        ("batch_size", 0, r"LF186.*`--batch-size`"),
        ("shard_size", 2.5, r"LF186.*`--shard-size` must be an int >= 1, got 2.5"),
        ("gpus_per_actor", -1.0, r"LF186.*`--gpus-per-actor` must be a number >= 0"),
        ("cpus_per_actor", 0.0, r"LF186.*`--cpus-per-actor` must be a number > 0"),
        ("text_key", "", r"LF186.*`--text-key` must be a non-empty string"),
        ("address", " ", r"LF186.*`--address` must be a Ray cluster address"),
    ],
)
def test_bad_option_values_are_named(saved_pipeline, corpus, tmp_path, option, value, match):
    with pytest.raises(ValueError, match=match):
        annotate(saved_pipeline, corpus, tmp_path / "out", **{option: value})


@needs_ray
def test_missing_pipeline_input_and_unknown_formats_are_clear_errors(saved_pipeline, corpus, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"LF181.*'/no/such/pipeline': no such folder.*installed"):
        annotate("/no/such/pipeline", corpus, out)
    with pytest.raises(ValueError, match=r"LF181.*the folder has no config.cfg"):
        annotate(tmp_path, corpus, out)
    with pytest.raises(ValueError, match=r"LF182.*missing.jsonl: no such file or folder"):
        annotate(saved_pipeline, tmp_path / "missing.jsonl", out)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"LF182.*the folder holds no files"):
        annotate(saved_pipeline, tmp_path / "empty", out)
    (tmp_path / "blank.jsonl").write_text("\n \n", encoding="utf8")
    with pytest.raises(ValueError, match=r"LF182.*holds no records"):
        annotate(saved_pipeline, tmp_path / "blank.jsonl", out)
    (tmp_path / "data.csv").write_text("text\nhello\n", encoding="utf8")
    with pytest.raises(ValueError, match=r"LF183.*data.csv: its suffix '.csv'.*Supported: .jsonl"):
        annotate(saved_pipeline, tmp_path / "data.csv", out)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "data.csv").write_text("text\n", encoding="utf8")
    with pytest.raises(ValueError, match=r"LF183.*none .jsonl, .txt or .spacy \(found .csv\)"):
        annotate(saved_pipeline, tmp_path / "other", out)
    (tmp_path / "broken.spacy").write_bytes(b"not a docbin")
    with pytest.raises(ValueError, match=r"LF182.*broken.spacy: it is not a DocBin"):
        annotate(saved_pipeline, tmp_path / "broken.spacy", out)
    assert not out.exists()


@needs_ray
def test_an_output_folder_of_something_else_is_refused(saved_pipeline, corpus, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("keep", encoding="utf8")
    with pytest.raises(ValueError, match=r"LF185.*full: it holds files but no manifest.json"):
        annotate(saved_pipeline, corpus, tmp_path / "full")
    (tmp_path / "file").write_text("", encoding="utf8")
    with pytest.raises(ValueError, match=r"LF185.*file: it is a file"):
        annotate(saved_pipeline, corpus, tmp_path / "file")
    with pytest.raises(ValueError, match=r"LF185.*it lies inside INPUT"):
        annotate(saved_pipeline, corpus, corpus / "out")


def test_the_cli_without_ray_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails, as if not installed
    result = CliRunner().invoke(app, ["annotate", "pipeline", str(tmp_path / "in.jsonl"), "out"])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)  # no traceback
    output = " ".join(result.output.split())  # wasabi wraps lines
    assert "LF180" in output and 'pip install "spacy-longformer[ray]"' in output


# --- On Ray --------------------------------------------------------------------------------------------


def test_two_actors_write_what_nlp_pipe_gives(annotated, saved_pipeline, corpus):
    output, manifest, seconds = annotated
    print(f"annotate with 2 actors: {seconds:.1f}s")
    expected = _expected_records(corpus)
    nlp = spacy.load(saved_pipeline)
    got = list(read_annotated(output, nlp.vocab))
    assert _ids(got) == [(source, line) for source, line, _ in expected]
    _assert_same(got, _oracle(nlp, corpus))
    first = got[0]
    # A DocBin reads JSON arrays back as tuples (spaCy's msgpack); JSON writes them as arrays again.
    assert json.loads(json.dumps(first.user_data["meta"])) == {"i": 0, "tags": ["x"]}
    assert first.user_data["fields"] == {"id": "doc-0"}
    assert got[N_JSONL].user_data["meta"] == {"from": "docbin", "i": 0}  # a DocBin's own user data is kept
    last = f"c/{N_TXT - 2:03d}.txt"
    assert got[-1].user_data == {**got[-1].user_data, "meta": {}, "fields": {}, "source": last}
    counts = manifest["counts"]
    assert counts == {
        **counts,
        "records": N_RECORDS,
        "written": N_GOOD,
        "failed": 6,
        "shards": 9,
        "shards_lost": 0,
    }
    assert manifest["complete"] is True
    assert counts["tokens"] == sum(len(doc) for doc in got)
    assert sorted(output.glob("*.spacy")) == [output / f"shard-{i:06d}.spacy" for i in range(9)]
    assert not list(output.glob("*.tmp"))
    assert len(manifest["actors"]) == 2
    assert all(actor["peak_rss_bytes"] > 50 * 2**20 for actor in manifest["actors"])
    assert manifest["timings"]["docs"] == N_GOOD and manifest["timings"]["docs_per_second"] > 0
    on_disk = srsly.read_json(output / MANIFEST)
    assert [on_disk[key] for key in ("counts", "shards", "failed")] == [
        manifest[key] for key in ("counts", "shards", "failed")
    ]


def test_malformed_records_are_listed_with_their_line_and_source(annotated):
    _, manifest, _ = annotated
    lines, line = {}, 0
    for i in range(N_JSONL):
        line += 1
        if i in BAD_LINES:
            line += 1
            lines[line] = BAD_LINES[i][1]
    expected = [("a.jsonl", number, error) for number, error in lines.items() if error]
    expected.append((f"c/{N_TXT - 1:03d}.txt", 1, "not UTF-8"))
    failed = manifest["failed"]
    assert [(entry["source"], entry["line"]) for entry in failed] == [(s, n) for s, n, _ in expected]
    for entry, (_, _, error) in zip(failed, expected, strict=True):
        assert error in entry["error"]


def test_a_rerun_skips_every_written_shard_and_adds_nothing(annotated, saved_pipeline, corpus):
    output, manifest, _ = annotated
    files = {path: path.stat().st_mtime_ns for path in output.glob("shard-*")}
    again = annotate(saved_pipeline, corpus, output, num_actors=2, shard_size=SHARD_SIZE, batch_size=8)
    assert again["counts"] == {**manifest["counts"], "shards_resumed": 9}
    assert again["failed"] == manifest["failed"]
    assert again["timings"]["docs"] == 0 and again["actors"] == []
    assert {path: path.stat().st_mtime_ns for path in output.glob("shard-*")} == files
    nlp = spacy.load(saved_pipeline)
    ids = _ids(list(read_annotated(output, nlp.vocab)))
    assert len(ids) == len(set(ids)) == N_GOOD


def test_an_output_of_another_input_pipeline_or_shard_size_is_refused(
    annotated, saved_pipeline, corpus, tmp_path
):
    output, _, _ = annotated
    with pytest.raises(ValueError, match=r"LF184.*the input \(sha256.*new OUTPUT"):
        annotate(saved_pipeline, corpus / "a.jsonl", output, shard_size=SHARD_SIZE)
    with pytest.raises(ValueError, match=rf"LF184.*--shard-size.*{SHARD_SIZE}.*this run has 50"):
        annotate(saved_pipeline, corpus, output, shard_size=50)
    with pytest.raises(ValueError, match=r"LF184.*--text-key.*'text'.*'body'"):
        annotate(saved_pipeline, corpus, output, shard_size=SHARD_SIZE, text_key="body")
    other = tmp_path / "pipeline"
    shutil.copytree(saved_pipeline, other)
    meta = json.loads((other / "meta.json").read_text(encoding="utf8"))
    (other / "meta.json").write_text(json.dumps({**meta, "version": "9.9.9"}), encoding="utf8")
    with pytest.raises(ValueError, match=r"LF184.*the pipeline \(sha256"):
        annotate(other, corpus, output, shard_size=SHARD_SIZE)


def test_a_pool_larger_than_the_machine_is_refused(ray_session, saved_pipeline, corpus, tmp_path):
    with pytest.raises(ValueError, match=r"LF189.*This machine has 2 CPUs, but 3 actors of 1 CPU"):
        annotate(saved_pipeline, corpus, tmp_path / "out", num_actors=3)
    with pytest.raises(ValueError, match=r"LF189.*0 GPUs, but 1 actors of 1 GPU.*--gpus-per-actor"):
        annotate(saved_pipeline, corpus, tmp_path / "out", gpus_per_actor=1.0)


@Language.component("annotate_test_boom")
def _boom(doc: Doc) -> Doc:
    """A record the pipeline raises on: one that says BOOM."""
    if "BOOM" in doc.text:
        raise ValueError("this doc says BOOM")
    return doc


def test_a_record_the_pipeline_raises_on_is_listed_and_its_batch_written(
    ray_session, saved_pipeline, tmp_path
):
    """What an actor does with a shard, run here: the batch that raised is run again doc by doc."""
    nlp = spacy.load(saved_pipeline)
    nlp.add_pipe("annotate_test_boom")
    nlp.to_disk(tmp_path / "pipeline")
    texts = [_text(i) for i in range(7)]
    texts[3] = "it says BOOM here"
    (tmp_path / "data.jsonl").write_text(
        "".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf8"
    )
    (shard,) = plan_input(tmp_path / "data.jsonl", shard_size=10).shards
    (tmp_path / "out").mkdir()
    annotator = _ShardAnnotator(
        pipeline=str(tmp_path / "pipeline"),
        root=str(tmp_path),
        output=str(tmp_path / "out"),
        text_key="text",
        batch_size=4,
        gpu=False,
    )
    summary = annotator._annotate(shard)
    error = "the pipeline raised ValueError: this doc says BOOM"
    assert summary["failed"] == [{"line": 4, "source": "data.jsonl", "error": error}]
    assert summary["docs"] == 6
    docs = list(DocBin().from_disk(tmp_path / "out" / "shard-000000.spacy").get_docs(nlp.vocab))
    assert [doc.user_data["line"] for doc in docs] == [1, 2, 3, 5, 6, 7]
    _assert_same(docs, list(nlp.pipe(texts[:3] + texts[4:])))
    written = (tmp_path / "out" / "shard-000000.spacy").stat().st_mtime_ns
    again = annotator._annotate(shard)  # a retry finds the shard written and leaves it
    assert {**again, "seconds": 0} == {**summary, "seconds": 0}  # srsly keeps 10 digits of a float
    assert (tmp_path / "out" / "shard-000000.spacy").stat().st_mtime_ns == written


# --- Killing workers and drivers (slow: Ray restarts) ----------------------------------------------------


def _actor_tasks() -> list[int]:
    """Pids of this session's actors that are annotating a shard right now."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            running = (entry / "cmdline").read_bytes().startswith(ACTOR_TASK)
            if running and os.getsid(int(entry.name)) == os.getsid(0):
                pids.append(int(entry.name))
        except (OSError, ProcessLookupError):
            continue
    return pids


def _kill_actors(stop: threading.Event, killed: list[int], *, every: bool) -> None:
    """SIGKILL actors mid-shard: the first one seen, or (``every``) each one seen until ``stop``."""
    while not stop.is_set():
        for pid in _actor_tasks():
            if pid not in killed:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                if not every:
                    return
        time.sleep(0.05)


def _with_killer(run: Callable[[], dict], *, every: bool) -> tuple[dict, list[int]]:
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_actors, args=(stop, killed), kwargs={"every": every}, daemon=True)
    killer.start()
    try:
        return run(), killed
    finally:
        stop.set()
        killer.join(timeout=10)


@pytest.mark.slow
def test_a_killed_actor_has_its_shard_retried(ray_session, saved_pipeline, tmp_path):
    data = tmp_path / "data.jsonl"
    _write_jsonl(data, 150)
    output = tmp_path / "out"
    manifest, killed = _with_killer(
        lambda: annotate(saved_pipeline, data, output, num_actors=2, shard_size=25, batch_size=4), every=False
    )
    assert len(killed) == 1
    assert manifest["complete"] is True and manifest["failed"] == []
    assert manifest["counts"]["written"] == 150
    # The killed process wrote nothing; its actor came back in a new one, which did.
    assert len(manifest["actors"]) == 2
    assert killed[0] not in {pid for actor in manifest["actors"] for pid in actor["pids"]}
    nlp = spacy.load(saved_pipeline)
    got = list(read_annotated(output, nlp.vocab))
    assert [doc.user_data["line"] for doc in got] == list(range(1, 151))
    _assert_same(got, list(nlp.pipe([_text(i) for i in range(150)])))


@pytest.mark.slow
def test_a_shard_whose_worker_always_dies_is_listed_as_failed_then_retried_by_a_rerun(
    ray_session, saved_pipeline, tmp_path
):
    data = tmp_path / "data.jsonl"
    _write_jsonl(data, 12, bad={3: b"\n"})
    output = tmp_path / "out"
    manifest, killed = _with_killer(lambda: annotate(saved_pipeline, data, output, shard_size=20), every=True)
    assert len(killed) == 3  # the first attempt and both retries
    assert manifest["complete"] is False
    assert manifest["counts"] == {**manifest["counts"], "written": 0, "failed": 12, "shards_lost": 1}
    assert [entry["line"] for entry in manifest["failed"]] == [1, 2, 3, 4, *range(6, 14)]
    assert all("died on each of its 3 attempts" in entry["error"] for entry in manifest["failed"])
    assert not list(output.glob("shard-*"))
    again = annotate(saved_pipeline, data, output, shard_size=20)
    assert again["complete"] is True and again["failed"] == []
    assert again["counts"]["written"] == 12


def _session_pids(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _kill_session(sid: int) -> None:
    for pid in _session_pids(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _run(command: list[str], timeout: int, env: dict | None = None) -> subprocess.CompletedProcess:
    """``command`` in a session of its own, all of whose processes die when it times out."""
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=env,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_session(process.pid)
        process.communicate()
        raise
    finally:
        _kill_session(process.pid)  # what Ray left behind
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


@pytest.mark.slow
def test_a_driver_killed_midway_then_rerun_loses_and_duplicates_nothing(
    saved_pipeline, corpus, tmp_path, tmp_path_factory
):
    env = {**os.environ, "RAY_TMPDIR": str(tmp_path_factory.mktemp("ray"))}
    output = tmp_path / "out"
    command = [sys.executable, "-m", "spacy_longformer", "annotate", str(saved_pipeline), str(corpus)]
    command += [str(output), "--num-actors", "2", "--shard-size", "10", "--batch-size", "4"]
    driver = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env
    )
    try:
        deadline = time.monotonic() + 240
        while len(list(output.glob("shard-*.json"))) < 3:
            assert driver.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no shard written in 4 minutes"
            time.sleep(0.1)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        _kill_session(driver.pid)
    n_written = len(list(output.glob("shard-*.json")))
    assert 3 <= n_written < len(plan_input(corpus, shard_size=10).shards)  # killed midway
    result = _run(command, timeout=400, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{N_GOOD} of {N_RECORDS} records annotated" in result.stdout
    manifest = srsly.read_json(output / MANIFEST)
    assert manifest["complete"] is True and manifest["counts"]["shards_resumed"] >= n_written
    nlp = spacy.load(saved_pipeline)
    got = list(read_annotated(output, nlp.vocab))
    assert _ids(got) == [(source, line) for source, line, _ in _expected_records(corpus)]
    _assert_same(got, _oracle(nlp, corpus))
    assert sum(len(DocBin().from_disk(path)) for path in output.glob("*.spacy")) == N_GOOD
