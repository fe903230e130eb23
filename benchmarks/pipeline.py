"""``nlp.pipe`` on long documents: our longformer_encoder vs spacy-transformers' transformer pipe.

    pip install -e ".[bench]"
    python benchmarks/pipeline.py                      # base-size random checkpoint, 2k-8k words
    python benchmarks/pipeline.py --layers 2 --docs 2  # a quick look

Both pipes read the same random HF checkpoint (base size by default, a BPE trained offline).
spacy-transformers covers a long doc with strided spans of spaCy tokens (its documented way past
the model's length); ours with windows of pieces cut on token edges and ``<s>`` global. Each
pipeline runs in a fresh subprocess: one warm-up doc, then all documents timed; peak memory is
the resident-set high-water mark above the memory held before the run.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from child import report, run_child
from memory import peak_rss

app = typer.Typer(add_completion=False)

WORDS = (2000, 4000, 6000, 8000)


def _build_nlp(impl: str, checkpoint: Path, window_tokens: int, stride_tokens: int):
    import spacy

    nlp = spacy.blank("en")
    if impl == "ours":
        nlp.add_pipe("longformer_encoder", config={"model": {"name": str(checkpoint)}})
    else:
        import spacy_transformers  # noqa: F401  (registers the transformer factory)

        nlp.add_pipe(
            "transformer",
            config={
                "model": {
                    "@architectures": "spacy-transformers.TransformerModel.v3",
                    "name": str(checkpoint),
                    "tokenizer_config": {"use_fast": True},
                    "get_spans": {
                        "@span_getters": "spacy-transformers.strided_spans.v1",
                        "window": window_tokens,
                        "stride": stride_tokens,
                    },
                }
            },
        )
    nlp.initialize()
    return nlp


def _measure(
    impl: str, checkpoint: Path, texts: list[str], threads: int, window_tokens: int, stride_tokens: int
) -> dict[str, Any]:
    import torch

    torch.set_num_threads(threads)
    nlp = _build_nlp(impl, checkpoint, window_tokens, stride_tokens)
    list(nlp.pipe(texts[:1]))  # warm-up
    with peak_rss() as memory:
        start = time.perf_counter()
        n_tokens = sum(len(doc) for doc in nlp.pipe(texts, batch_size=2))
        seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "docs_per_s": len(texts) / seconds,
        "tokens": n_tokens,
        "peak_bytes": memory["bytes"],
    }


@app.command()
def main(
    docs: Annotated[int, typer.Option(help="Documents per size.")] = 1,
    layers: Annotated[int, typer.Option(help="Encoder layers (12 = base).")] = 12,
    threads: Annotated[int, typer.Option(help="torch CPU threads.")] = 2,
    window_tokens: Annotated[
        int, typer.Option(help="spacy-transformers span window, in spaCy tokens.")
    ] = 2048,
    stride_tokens: Annotated[
        int, typer.Option(help="spacy-transformers span stride, in spaCy tokens.")
    ] = 1792,
    out: Annotated[Path, typer.Option(help="Folder for pipeline.json.")] = Path("benchmarks/out"),
    measure: Annotated[str, typer.Option(hidden=True)] = "",
) -> None:
    """docs/s and peak memory of both pipelines on the same long documents."""
    if measure:
        spec = json.loads(measure)
        spec["checkpoint"] = Path(spec["checkpoint"])
        report(_measure(**spec))
        return
    from spacy_longformer.random_checkpoint import build_random_checkpoint, synthetic_text

    out.mkdir(parents=True, exist_ok=True)
    texts = [synthetic_text(n, seed=i * 10 + j) for j, n in enumerate(WORDS) for i in range(docs)]
    results = {}
    with tempfile.TemporaryDirectory(prefix="longformer-pipe-bench-") as tmp:
        checkpoint = Path(tmp) / "checkpoint"
        print(f"building a random checkpoint ({layers} layers, hidden 768, window 512) ...", flush=True)
        build_random_checkpoint(
            checkpoint,
            texts=[synthetic_text(20000, seed=99)],
            vocab_size=8000,
            hidden_size=768,
            num_hidden_layers=layers,
            num_attention_heads=12,
            intermediate_size=3072,
            attention_window=512,
            max_position_embeddings=4098,
        )
        for impl in ("ours", "spacy-transformers"):
            spec = dict(
                impl=impl,
                checkpoint=str(checkpoint),
                texts=texts,
                threads=threads,
                window_tokens=window_tokens,
                stride_tokens=stride_tokens,
            )
            print(
                f"{impl:18} {len(texts)} docs of {', '.join(map(str, WORDS))} words ...", end=" ", flush=True
            )
            measured = run_child(__file__, spec)
            if isinstance(measured, str):
                print(measured)
                continue
            results[impl] = measured
            r = results[impl]
            print(
                f"{r['seconds']:.1f}s, {r['docs_per_s']:.3f} docs/s, peak {r['peak_bytes'] / 2**20:.0f} MiB"
            )
    if len(results) == 2:
        ours, peer = results["ours"], results["spacy-transformers"]
        print(
            f"\nours / spacy-transformers: {ours['docs_per_s'] / peer['docs_per_s']:.2f}x the docs/s, "
            f"{ours['peak_bytes'] / max(peer['peak_bytes'], 1):.2f}x the peak memory"
        )
    meta = {
        "words": WORDS,
        "docs_per_size": docs,
        "layers": layers,
        "threads": threads,
        "spacy_transformers_spans": {"window": window_tokens, "stride": stride_tokens},
    }
    (out / "pipeline.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(f"wrote {out / 'pipeline.json'}")


if __name__ == "__main__":
    app()
