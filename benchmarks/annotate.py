"""docs/s of ``annotate`` on Ray with 1 and 2 local actors, against plain ``nlp.pipe`` and ``spacy
apply --n-process 2``, on the same long documents, in one run.

    pip install -e ".[ray]"
    python benchmarks/annotate.py                                  # about 4 minutes on 2 cores
    python benchmarks/annotate.py --docs 400 --hidden 768 --layers 12 --words 3000   # base size

The pipeline is longformer_encoder + a listening longformer_ner on a random checkpoint (a BPE trained
offline); the documents are ``synthetic_text`` of ``--words`` words, each longer than one window.
Every run is a fresh subprocess timed from start to exit ("wall": imports, loading, Ray's start-up
and writing the output included), as a user runs it; "model" docs/s leave the start-up out:
``nlp.pipe``'s loop, and for ``annotate`` the docs over the longest busy time of one actor (from
``manifest.json``). Every run writes DocBins with user data (``doc._.longformer`` included) and
the same ``--batch-size``. torch threads: ``nlp.pipe`` uses every core; ``spacy apply``'s forked
workers run one thread each; an actor runs one per CPU it holds (``--cpus-per-actor``). The
table's last column is the load average before each run: on a shared machine, compare rows run
under the same load.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from wasabi import Printer

app = typer.Typer(add_completion=False)
LISTENER = {"@architectures": "spacy-longformer.LongformerListener.v1", "upstream": "*"}


def _build(folder: Path, *, docs: int, words: int, hidden: int, layers: int) -> tuple[Path, Path]:
    """A saved pipeline and a JSONL file of ``docs`` documents in ``folder``."""
    import spacy
    import srsly
    from spacy.training import Example

    from spacy_longformer.data import synthetic_ner
    from spacy_longformer.random_checkpoint import build_random_checkpoint, synthetic_text

    checkpoint = build_random_checkpoint(
        folder / "checkpoint",
        texts=[synthetic_text(20_000, seed=99)],
        vocab_size=4000,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4 if hidden < 768 else 12,
        intermediate_size=4 * hidden,
        attention_window=128,
        max_position_embeddings=1026,
    )
    nlp = spacy.blank("en")
    nlp.add_pipe("longformer_encoder", config={"model": {"name": str(checkpoint)}})
    nlp.add_pipe("longformer_ner", config={"model": {"encoder": LISTENER}})
    references = synthetic_ner(nlp, 2, n_words=100, seed=0)
    nlp.initialize(lambda: [Example(nlp.make_doc(ref.text), ref) for ref in references])
    nlp.to_disk(folder / "pipeline")
    data = folder / "docs.jsonl"
    srsly.write_jsonl(data, ({"text": synthetic_text(words, seed=i), "meta": {"i": i}} for i in range(docs)))
    return folder / "pipeline", data


def _measure_pipe(pipeline: Path, data: Path, output: Path, batch_size: int) -> dict[str, Any]:
    """Plain ``nlp.pipe`` in this process, written as one DocBin."""
    import spacy
    import srsly
    from spacy.tokens import DocBin

    nlp = spacy.load(pipeline)
    texts = [record["text"] for record in srsly.read_jsonl(data)]
    start = time.perf_counter()
    docs = list(nlp.pipe(texts, batch_size=batch_size))
    seconds = time.perf_counter() - start
    DocBin(docs=docs, store_user_data=True).to_disk(output)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"model_seconds": seconds, "docs": len(docs), "peak_rss_bytes": peak}


def _run(command: list[str], env: dict[str, str], timeout: int) -> tuple[float, subprocess.CompletedProcess]:
    """Wall seconds and result of ``command`` in a session of its own, whose every process (Ray's
    too) is killed afterwards."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, env=env
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and os.getsid(int(entry.name)) == process.pid:
                    os.kill(int(entry.name), signal.SIGKILL)
            except OSError:
                continue
        process.wait()
    return time.perf_counter() - start, subprocess.CompletedProcess(
        command, process.returncode, stdout, stderr
    )


def _commands(
    pipeline: Path, data: Path, folder: Path, batch_size: int, shard_size: int
) -> list[tuple[str, list[str]]]:
    """Each run's name and command line; run i writes to ``folder/out-i`` (``.spacy`` for a file)."""
    spec = {"pipeline": str(pipeline), "data": str(data), "output": str(folder / "out-0.spacy")}
    batch = ["--batch-size", str(batch_size)]
    annotate = [sys.executable, "-m", "spacy_longformer", "annotate", str(pipeline), str(data)]
    options = [*batch, "--shard-size", str(shard_size)]
    return [
        ("nlp.pipe, 1 process", [sys.executable, __file__, *batch, "--measure-pipe", json.dumps(spec)]),
        (
            "spacy apply --n-process 2",
            [sys.executable, "-m", "spacy", "apply", str(pipeline), str(data), str(folder / "out-1.spacy")]
            + ["--n-process", "2", *batch],
        ),
        ("annotate, 1 actor", [*annotate, str(folder / "out-2"), *options, "--num-actors", "1"]),
        ("annotate, 2 actors", [*annotate, str(folder / "out-3"), *options, "--num-actors", "2"]),
        (
            "annotate, 1 actor of 2 CPUs",
            [*annotate, str(folder / "out-4"), *options, "--num-actors", "1", "--cpus-per-actor", "2"],
        ),
    ]


@app.command()
def main(
    docs: Annotated[int, typer.Option(help="Documents.")] = 40,
    words: Annotated[int, typer.Option(help="Words per document (1,000: two windows).")] = 1000,
    hidden: Annotated[int, typer.Option(help="Hidden size of the random checkpoint.")] = 128,
    layers: Annotated[int, typer.Option(help="Encoder layers.")] = 3,
    batch_size: Annotated[int, typer.Option(help="Docs per nlp.pipe batch, in every run.")] = 4,
    shard_size: Annotated[int, typer.Option(help="annotate: records per shard.")] = 5,
    timeout: Annotated[int, typer.Option(help="Seconds before a run is killed.")] = 900,
    out: Annotated[Path, typer.Option(help="Folder for annotate.json.")] = Path("benchmarks/out"),
    measure_pipe: Annotated[str, typer.Option(hidden=True)] = "",
) -> None:
    """docs/s of annotate (1 and 2 actors, and 1 actor of 2 CPUs), nlp.pipe and spacy apply."""
    if measure_pipe:
        spec = json.loads(measure_pipe)
        print(
            "RESULT "
            + json.dumps(_measure_pipe(**{k: Path(v) for k, v in spec.items()}, batch_size=batch_size))
        )
        return
    msg = Printer()
    out.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    # A short folder: Ray's sockets live under RAY_TMPDIR, and a socket path holds at most 107 bytes.
    with tempfile.TemporaryDirectory(prefix="lf-annotate-") as tmp:
        folder = Path(tmp)
        msg.info(f"Building the pipeline (hidden {hidden}, {layers} layers) and {docs} docs of {words} words")
        pipeline, data = _build(folder, docs=docs, words=words, hidden=hidden, layers=layers)
        # Passive OpenMP waits for every run: threads that spin take the cores from the work where
        # other processes share them (what `demo` sets too).
        env = {**os.environ, "RAY_TMPDIR": str(folder / "ray"), "OMP_WAIT_POLICY": "PASSIVE"}
        for i, (name, command) in enumerate(_commands(pipeline, data, folder, batch_size, shard_size)):
            target = folder / f"out-{i}"
            load = os.getloadavg()[0]
            msg.text(f"{name} (load average {load:.1f}) ...")
            wall, done = _run(command, env, timeout)
            if done.returncode != 0:
                msg.fail(f"{name} failed: {(done.stderr.strip().splitlines() or ['?'])[-1][:300]}")
                continue
            row: dict[str, Any] = {
                "run": name,
                "wall_seconds": wall,
                "docs_per_second_wall": docs / wall,
                "load_average_before": load,
            }
            if name.startswith("nlp.pipe"):
                measured = json.loads(
                    next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:]
                )
                row["docs_per_second_model"] = docs / measured["model_seconds"]
                row["peak_rss_bytes"] = [measured["peak_rss_bytes"]]
            elif name.startswith("annotate"):
                manifest = json.loads((target / "manifest.json").read_text(encoding="utf8"))
                actors = manifest["actors"]
                assert manifest["counts"]["written"] == docs, manifest["counts"]
                row["docs_per_second_model"] = docs / max(actor["seconds"] for actor in actors)
                row["peak_rss_bytes"] = [actor["peak_rss_bytes"] for actor in actors]
                row["timings"] = manifest["timings"]
            results.append(row)
    pipe = next((row for row in results if row["run"].startswith("nlp.pipe")), None)
    table = []
    for row in results:
        model = row.get("docs_per_second_model")
        table.append(
            (
                row["run"],
                f"{row['wall_seconds']:.1f}",
                f"{row['docs_per_second_wall']:.2f}",
                f"{model:.2f}" if model else "-",
                f"{row['docs_per_second_wall'] / pipe['docs_per_second_wall']:.2f}x" if pipe else "-",
                ", ".join(f"{b / 2**20:.0f}" for b in row.get("peak_rss_bytes", [])) or "-",
                f"{row['load_average_before']:.1f}",
            )
        )
    header = ("run", "wall s", "docs/s wall", "docs/s model", "wall vs nlp.pipe", "peak RSS MiB", "load")
    msg.table(table, header=header, divider=True, aligns=("l", "r", "r", "r", "r", "r", "r"))
    meta = {
        "docs": docs,
        "words": words,
        "hidden": hidden,
        "layers": layers,
        "batch_size": batch_size,
        "shard_size": shard_size,
        "cpus": os.cpu_count(),
    }
    (out / "annotate.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    msg.good(f"Wrote {out / 'annotate.json'}")


if __name__ == "__main__":
    app()
