"""docs/s and peak memory of the project's pipelines against spacy-transformers on the same long docs.

    python scripts/benchmark.py --pipeline training/textcat/model-best --checkpoint training/checkpoint

Three pipelines, each in a fresh subprocess (one warm-up doc, then every length timed in turn):

- ``longformer_textcat``: the trained text classifier (encoder + head) that the project packages;
- ``longformer_encoder``: our encoder pipe alone, on the checkpoint the training started from;
- ``spacy-transformers``: its ``transformer`` pipe on the same checkpoint folder (loaded through
  transformers), covering long docs with strided spans of half the model's length in spaCy tokens.

The documents are synthetic textcat docs (the training data's vocabulary) of each length in ``--words``.
Pipelines are built with ``benchmarks/pipeline.py`` and memory measured with ``benchmarks/memory.py``
from the repository root. Writes OUT/benchmark.json and OUT/benchmark.png (seconds per doc vs length).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "benchmarks"))

from memory import peak_rss  # noqa: E402  (benchmarks/memory.py)
from pipeline import _build_nlp  # noqa: E402  (benchmarks/pipeline.py)

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


def _span_tokens(checkpoint: Path) -> tuple[int, int]:
    """spacy-transformers' span window and stride, in spaCy tokens: half the model's length, 7/8 stride."""
    config = json.loads((checkpoint / "config.json").read_text())
    window = max(8, (int(config["max_position_embeddings"]) - 2) // 2)
    return window, window * 7 // 8


def _measure(
    impl: str, pipeline: str, checkpoint: str, words: list[int], docs: int, threads: int, gpu_id: int
):
    import spacy
    import torch

    torch.set_num_threads(threads)
    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    window, stride = _span_tokens(Path(checkpoint))
    if impl == "longformer_textcat":
        nlp = spacy.load(pipeline)
    else:
        nlp = _build_nlp("ours" if impl == "longformer_encoder" else impl, Path(checkpoint), window, stride)
    texts = _texts(words, docs)
    list(nlp.pipe(texts[words[0]][:1]))  # warm-up
    rows = []
    with peak_rss() as memory:
        for n in tqdm(words, desc=impl, unit="length", disable=None, leave=False):
            start = time.perf_counter()
            tokens = sum(len(doc) for doc in nlp.pipe(texts[n], batch_size=2))
            seconds = time.perf_counter() - start
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
        "peak_mib": memory["bytes"] / 2**20,
    }
    if gpu_id >= 0:
        result["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    if impl == "spacy-transformers":
        result["spans"] = {"window": window, "stride": stride}
    return result


def _plot(results: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for impl, result in results.items():
        rows = result["by_length"]
        ax.plot([r["words"] for r in rows], [r["seconds_per_doc"] for r in rows], marker="o", label=impl)
    ax.set_xlabel("document length (words)")
    ax.set_ylabel("seconds per document")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
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
    docs: Annotated[int, typer.Option(help="Documents per length.")] = 3,
    threads: Annotated[int, typer.Option(help="torch CPU threads.")] = 2,
    gpu_id: Annotated[int, typer.Option(help="GPU to run on; -1 for the CPU.")] = -1,
    measure: Annotated[str, typer.Option(hidden=True)] = "",
) -> None:
    """Time the trained textcat pipeline, our encoder and spacy-transformers over long documents."""
    if measure:
        print("RESULT " + json.dumps(_measure(**json.loads(measure))), flush=True)
        return
    out.mkdir(parents=True, exist_ok=True)
    words = sorted(words)
    results: dict[str, dict[str, Any]] = {}
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "error"}
    for impl in tqdm(IMPLS, desc="pipelines", unit="pipeline", disable=None):
        spec = dict(
            impl=impl,
            pipeline=str(pipeline),
            checkpoint=str(checkpoint),
            words=words,
            docs=docs,
            threads=threads,
            gpu_id=gpu_id,
        )
        done = subprocess.run(
            [sys.executable, __file__, "--measure", json.dumps(spec)],
            stdout=subprocess.PIPE,  # stderr passes through: the child's progress bar and errors
            text=True,
            env=env,
        )
        lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
        if not lines:
            tqdm.write(f"{impl}: failed (exit code {done.returncode}, its error above)")
            continue
        result = results[impl] = json.loads(lines[0][len("RESULT ") :])
        tqdm.write(f"{impl:20} {result['docs_per_s']:.2f} docs/s, peak {result['peak_mib']:.0f} MiB")
    if "longformer_textcat" in results and "spacy-transformers" in results:
        ours, peer = results["longformer_textcat"], results["spacy-transformers"]
        print(
            f"longformer_textcat / spacy-transformers: {ours['docs_per_s'] / peer['docs_per_s']:.2f}x the "
            f"docs/s, {ours['peak_mib'] / max(peer['peak_mib'], 1e-9):.2f}x the peak memory"
        )
    config = json.loads((checkpoint / "config.json").read_text())
    meta = {
        "words": words,
        "docs_per_length": docs,
        "threads": threads,
        "gpu_id": gpu_id,
        "pipeline": str(pipeline),
        "checkpoint": {
            key: config.get(key)
            for key in ("hidden_size", "num_hidden_layers", "attention_window", "max_position_embeddings")
        },
    }
    (out / "benchmark.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    size = meta["checkpoint"]
    _plot(
        results,
        out / "benchmark.png",
        f"nlp.pipe on long docs: hidden {size['hidden_size']}, {size['num_hidden_layers']} layers, "
        f"{'GPU' if gpu_id >= 0 else f'{threads} CPU threads'}",
    )
    print(f"wrote {out / 'benchmark.json'} and {out / 'benchmark.png'}")
    if len(results) < len(IMPLS):
        raise typer.Exit(code=1)


if __name__ == "__main__":
    app()
