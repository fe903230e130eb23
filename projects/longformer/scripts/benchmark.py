"""Seconds per document of the project's pipelines against spacy-transformers, at two model sizes.

    python scripts/benchmark.py --pipeline training/textcat/model-best --checkpoint training/checkpoint

One size alone would mislead, so the benchmark times two:

- the project's checkpoint (2 layers x hidden 64 by default): the trained ``longformer_textcat`` that
  the project packages, ``longformer_encoder`` alone on the checkpoint it was trained from, and
  spacy-transformers' ``transformer`` pipe on that same folder. A model this small costs little to
  run, so these times are mostly the pipelines' fixed costs per call and per window;
- a random, untrained checkpoint of a representative size (6 layers x hidden 512, window 256, 4,096
  pieces by default), built offline with ``build_random_checkpoint`` for speed only:
  ``longformer_encoder`` and spacy-transformers on the same folder. Here the encoders' arithmetic
  dominates.

spacy-transformers (transformers' LongformerModel) covers a long doc with strided spans of spaCy
tokens, half the model's length every 7/8 of that; ours with windows of pieces and ``<s>`` global.
The docs are synthetic textcat docs (the training data's vocabulary) of each length in ``--words``,
the same for every pipeline. Each pipeline runs in a fresh subprocess: one warm-up doc, then each
length's docs ``--repeats`` times, keeping the fastest pass (the slower ones measure other processes
on the machine, not the pipeline), on ``--threads`` torch threads (one by default: with two, another
process holding a core stalls our encoder's threads far more than spacy-transformers'). Peak memory
is the resident-set high-water mark above what was held before (Linux).
Writes OUT/benchmark.json (results keyed by size) and OUT/benchmark.png (a panel per size).
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from tqdm import tqdm

if TYPE_CHECKING:
    from spacy.language import Language

app = typer.Typer(add_completion=False)

IMPLS = ("longformer_textcat", "longformer_encoder", "spacy-transformers")


def _texts(words: list[int], docs: int) -> dict[int, list[str]]:
    import spacy

    from spacy_longformer.data import iter_synthetic

    nlp = spacy.blank("en")
    # Seeds apart from the training data's (seed 0), one per length.
    return {
        n: [doc.text for doc in iter_synthetic("textcat", nlp, docs, n_words=n, seed=1000 + n)] for n in words
    }


def _size(checkpoint: Path) -> dict[str, Any]:
    """A checkpoint's size as the JSON and the plot's titles name it: layers, hidden, window, pieces."""
    config = json.loads((checkpoint / "config.json").read_text())
    window = config["attention_window"]
    return {
        "layers": config["num_hidden_layers"],
        "hidden_size": config["hidden_size"],
        "attention_window": window[0] if isinstance(window, list) and len(set(window)) == 1 else window,
        "max_pieces": config["max_position_embeddings"] - 2,
    }


def _span_tokens(checkpoint: Path) -> tuple[int, int]:
    """spacy-transformers' span window and stride, in spaCy tokens: half the model's length, 7/8 stride."""
    window = max(8, _size(checkpoint)["max_pieces"] // 2)
    return window, window * 7 // 8


@contextmanager
def _peak_rss() -> Iterator[dict[str, float | None]]:
    """MiB of resident memory the block adds at its peak (None off Linux).

    Freed memory is handed back and the high-water mark reset first, so what the process held
    before the block (imports, weights) does not count."""
    result: dict[str, float | None] = {"mib": None}
    if sys.platform != "linux":
        yield result
        return

    def kib(field: str) -> int:
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field))
        return int(line.split()[1])

    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    before = kib("VmRSS:")
    yield result
    result["mib"] = (kib("VmHWM:") - before) / 1024


def _build_nlp(impl: str, pipeline: Path, checkpoint: Path) -> Language:
    import spacy

    if impl == "longformer_textcat":
        return spacy.load(pipeline)
    nlp = spacy.blank("en")
    if impl == "longformer_encoder":
        nlp.add_pipe("longformer_encoder", config={"model": {"name": str(checkpoint)}})
    else:
        import spacy_transformers  # noqa: F401  (registers the transformer factory)

        window, stride = _span_tokens(checkpoint)
        get_spans = {
            "@span_getters": "spacy-transformers.strided_spans.v1",
            "window": window,
            "stride": stride,
        }
        nlp.add_pipe(
            "transformer",
            config={
                "model": {
                    "@architectures": "spacy-transformers.TransformerModel.v3",
                    "name": str(checkpoint),
                    "tokenizer_config": {"use_fast": True},
                    "get_spans": get_spans,
                }
            },
        )
    nlp.initialize()
    return nlp


def _measure(
    impl: str,
    pipeline: str,
    checkpoint: str,
    words: list[int],
    docs: int,
    repeats: int,
    threads: int,
    gpu_id: int,
) -> dict[str, Any]:
    import spacy
    import torch

    torch.set_num_threads(threads)
    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    nlp = _build_nlp(impl, Path(pipeline), Path(checkpoint))
    texts = _texts(words, docs)
    list(nlp.pipe(texts[words[0]][:1]))  # warm-up
    rows = []
    with _peak_rss() as memory:
        for n in tqdm(words, desc=impl, unit="length", disable=None, leave=False):
            passes = []
            for _ in range(repeats):
                start = time.perf_counter()
                tokens = sum(len(doc) for doc in nlp.pipe(texts[n], batch_size=2))
                passes.append(time.perf_counter() - start)
            seconds = min(passes)
            rows.append(
                {
                    "words": n,
                    "docs": docs,
                    "tokens": tokens,
                    "seconds": seconds,
                    "seconds_per_doc": seconds / docs,
                }
            )
    total = sum(row["seconds"] for row in rows)
    result: dict[str, Any] = {
        "by_length": rows,
        "seconds": total,
        "docs_per_s": docs * len(words) / total,
        "peak_mib": memory["mib"],
    }
    if gpu_id >= 0:
        result["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    if impl == "spacy-transformers":
        window, stride = _span_tokens(Path(checkpoint))
        result["spans"] = {"window": window, "stride": stride}
    return result


def _run(spec: dict[str, Any]) -> dict[str, Any] | None:
    """One pipeline's result, measured in a fresh subprocess (None if it failed: its error shows)."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "error"}
    done = subprocess.run(
        [sys.executable, __file__, "--measure", json.dumps(spec)],
        stdout=subprocess.PIPE,  # stderr passes through: the child's progress bar and errors
        text=True,
        env=env,
    )
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    if not lines:
        tqdm.write(f"{spec['impl']}: failed (exit code {done.returncode}, its error above)")
        return None
    return json.loads(lines[0][len("RESULT ") :])


def _title(entry: dict[str, Any]) -> str:
    size = entry["size"]
    return (
        f"{entry['weights']}\n{size['layers']} layers x hidden {size['hidden_size']}, "
        f"window {size['attention_window']}, {size['max_pieces']:,} pieces"
    )


def _plot(sizes: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {impl: f"C{i}" for i, impl in enumerate(IMPLS)}
    fig, axes = plt.subplots(1, len(sizes), figsize=(5.2 * len(sizes), 4.4), squeeze=False)
    for ax, entry in zip(axes[0], sizes.values(), strict=True):
        for impl, result in entry["results"].items():
            rows = result["by_length"]
            x, y = [r["words"] for r in rows], [r["seconds_per_doc"] for r in rows]
            spans = result.get("spans")
            label = (
                f"{impl}, spans of {spans['window']:,} tokens every {spans['stride']:,}" if spans else impl
            )
            ax.plot(x, y, marker="o", color=colors[impl], label=label)
        ax.set_title(_title(entry), fontsize=10)
        ax.set_xlabel("document length (words)")
        ax.set_ylabel("seconds per document")
        ax.set_ylim(0, ax.get_ylim()[1] * 1.25)  # room for the legend above the lines
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", fontsize=9)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@app.command()
def main(
    pipeline: Annotated[Path, typer.Option(help="The trained textcat pipeline.")] = Path(
        "training/textcat/model-best"
    ),
    checkpoint: Annotated[Path, typer.Option(help="The checkpoint folder it was trained from.")] = Path(
        "training/checkpoint"
    ),
    out: Annotated[Path, typer.Option(help="Folder for benchmark.json and benchmark.png.")] = Path("metrics"),
    words: Annotated[list[int], typer.Option(help="Document lengths in words; repeatable.")] = [  # noqa: B006
        250,
        500,
        1000,
        2000,
        4000,
    ],
    docs: Annotated[int, typer.Option(help="Documents per length.")] = 1,
    repeats: Annotated[int, typer.Option(help="Passes over each length's docs; the fastest counts.")] = 2,
    layers: Annotated[int, typer.Option(help="Layers of the representative random checkpoint.")] = 6,
    hidden_size: Annotated[
        int, typer.Option(help="Its hidden size, a multiple of 64 (one head per 64).")
    ] = 512,
    attention_window: Annotated[int, typer.Option(help="Its attention window.")] = 256,
    max_length: Annotated[int, typer.Option(help="Its pieces per window.")] = 4096,
    vocab_size: Annotated[int, typer.Option(help="Its BPE vocabulary size.")] = 1000,
    threads: Annotated[
        int, typer.Option(help="torch CPU threads (2+ only on an idle machine: see the README).")
    ] = 1,
    gpu_id: Annotated[int, typer.Option(help="GPU to run on; -1 for the CPU.")] = -1,
    measure: Annotated[str, typer.Option(hidden=True)] = "",
) -> None:
    """Time the project's pipelines and a representative encoder against spacy-transformers."""
    if measure:
        print("RESULT " + json.dumps(_measure(**json.loads(measure))), flush=True)
        return
    import spacy

    from spacy_longformer.data import iter_synthetic
    from spacy_longformer.random_checkpoint import build_random_checkpoint

    out.mkdir(parents=True, exist_ok=True)
    words = sorted(words)
    with tempfile.TemporaryDirectory(prefix="longformer-benchmark-") as tmp:
        # Its BPE learns the vocabulary of the docs it will read, as the project's checkpoint did.
        bpe_texts = [
            doc.text for doc in iter_synthetic("textcat", spacy.blank("en"), 200, n_words=250, seed=0)
        ]
        representative = build_random_checkpoint(
            Path(tmp) / "checkpoint",
            texts=bpe_texts,
            vocab_size=vocab_size,
            hidden_size=hidden_size,
            num_hidden_layers=layers,
            num_attention_heads=max(1, hidden_size // 64),
            intermediate_size=4 * hidden_size,
            attention_window=attention_window,
            max_position_embeddings=max_length + 2,
        )
        plan = [
            ("project", "the project's checkpoint (longformer_textcat trained from it)", checkpoint, IMPLS),
            ("random", "random checkpoint, untrained (speed only)", representative, IMPLS[1:]),
        ]
        sizes: dict[str, dict[str, Any]] = {}
        failed: list[str] = []
        runs = tqdm(
            total=sum(len(impls) for *_, impls in plan), desc="pipelines", unit="pipeline", disable=None
        )
        for kind, weights, folder, impls in plan:
            size = _size(folder)
            key = f"{kind}-{size['layers']}x{size['hidden_size']}"
            entry = sizes[key] = {"weights": weights, "size": size, "results": {}}
            for impl in impls:
                spec = dict(
                    impl=impl,
                    pipeline=str(pipeline),
                    checkpoint=str(folder),
                    words=words,
                    docs=docs,
                    repeats=repeats,
                    threads=threads,
                    gpu_id=gpu_id,
                )
                result = _run(spec)
                runs.update()
                if result is None:
                    failed.append(f"{key} {impl}")
                    continue
                entry["results"][impl] = result
                memory = "" if result["peak_mib"] is None else f", peak {result['peak_mib']:.0f} MiB"
                tqdm.write(f"{key:14} {impl:20} {result['docs_per_s']:.2f} docs/s{memory}")
        runs.close()
    for key, entry in sizes.items():
        ours, peer = (entry["results"].get(impl) for impl in ("longformer_encoder", "spacy-transformers"))
        if ours and peer:
            print(
                f"{key}: longformer_encoder / spacy-transformers: {ours['docs_per_s'] / peer['docs_per_s']:.2f}x the docs/s"
            )
    device = "GPU" if gpu_id >= 0 else f"{threads} CPU threads"
    meta = {
        "words": words,
        "docs_per_length": docs,
        "repeats": repeats,
        "threads": threads,
        "gpu_id": gpu_id,
        "pipeline": str(pipeline),
    }
    (out / "benchmark.json").write_text(json.dumps({"meta": meta, "sizes": sizes}, indent=2) + "\n")
    _plot(
        sizes,
        out / "benchmark.png",
        f"nlp.pipe on long docs: {docs} docs per length (fastest of {repeats} passes), {device}",
    )
    print(f"wrote {out / 'benchmark.json'} and {out / 'benchmark.png'}")
    if failed:
        tqdm.write(f"failed: {', '.join(failed)}")
        raise typer.Exit(code=1)


if __name__ == "__main__":
    app()
