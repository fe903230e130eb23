"""A long `nlp.pipe`: memory stays flat and nothing is lost.

    python benchmarks/soak.py                      # 1,000 mixed documents, a small random model
    python benchmarks/soak.py --docs 200 --out soak.json

The pipeline is a shared `longformer_encoder`, a listening `longformer_ner` and a
`longformer_textcat` (heads fresh: the annotations are arbitrary, their presence is what counts), on a
small random checkpoint (2 layers x 64, window 32, 256-piece position table, so long documents run
as many windows). The documents mix empty ones, whitespace, emoji and control characters, and
synthetic prose from 1 to 20,000 tokens, in a seeded order. Resident memory (the process's RSS) is
read after every document. The documents run twice, in the same order: the first pass sets the
allocator's high-water marks (a 20,000-token document late in the list raises them, which is no
leak), so the target is growth from the end of the first pass to the end of the second under 5%
(a leak grows with every document, so it shows there), and every document back, in order, with
`doc._.longformer`, a vector per token and its cats. Writes JSON and prints the figures.
"""

import json
import random
import tempfile
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import spacy
import typer

from spacy_longformer.random_checkpoint import build_random_checkpoint, synthetic_text

app = typer.Typer(add_completion=False)

ODD = ["", " ", "\n\n\t  ", "👩‍👩‍👧‍👦 🏳️‍🌈 🇩🇪", "a\x00b\x07c", "שלום עולם", "x" * 5000]


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def _texts(n_docs: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for i in range(n_docs):
        if rng.random() < 0.05:
            texts.append(rng.choice(ODD))
        else:
            # Mostly short and medium documents, some very long: about 1,500 words on average.
            n_words = int(min(20_000, rng.paretovariate(0.9) * 40))
            texts.append(synthetic_text(n_words, seed=seed * 100_003 + i))
    return texts


def _pipeline(checkpoint: Path) -> spacy.Language:
    nlp = spacy.blank("en")
    nlp.add_pipe("longformer_encoder", config={"model": {"name": str(checkpoint)}})
    listener = {"@architectures": "spacy-longformer.LongformerListener.v1"}
    nlp.add_pipe("longformer_ner", config={"model": {"encoder": listener}}).add_label("ORG")
    textcat = nlp.add_pipe("longformer_textcat", config={"model": {"encoder": {"name": str(checkpoint)}}})
    for label in ("A", "B"):
        textcat.add_label(label)
    nlp.initialize()
    return nlp


@app.command()
def main(
    docs: Annotated[int, typer.Option(help="Documents to run.")] = 1000,
    batch_size: Annotated[int, typer.Option(help="nlp.pipe batch size.")] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the documents.")] = 0,
    out: Annotated[Path, typer.Option(help="JSON results.")] = Path("benchmarks/out/soak.json"),
) -> None:
    texts = _texts(docs, seed)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = build_random_checkpoint(
            Path(tmp) / "checkpoint", hidden_size=64, intermediate_size=128, attention_window=32,
            max_position_embeddings=258, seed=seed,
        )  # fmt: skip
        nlp = _pipeline(checkpoint)
        rss, lost, tokens = [], [], 0
        start = time.perf_counter()
        twice = texts + texts
        for i, (text, doc) in enumerate(zip(twice, nlp.pipe(twice, batch_size=batch_size), strict=True)):
            complete = (
                doc.text == text
                and doc._.longformer is not None
                and doc.tensor.shape[0] == len(doc)
                and np.isfinite(doc.tensor).all()
                and set(doc.cats) == {"A", "B"}
            )
            if not complete:
                lost.append(i)
            tokens += len(doc)
            rss.append(_rss_mib())
        elapsed = time.perf_counter() - start
    mark = min(99, len(texts) - 1)
    first_pass_end = rss[len(texts) - 1]
    growth = (rss[-1] - first_pass_end) / first_pass_end
    results = {
        "docs": len(rss),
        "passes": 2,
        "tokens": tokens,
        "longest_doc_words": max(len(text.split()) for text in texts),
        "seconds": round(elapsed, 1),
        "docs_per_s": round(len(rss) / elapsed, 2),
        "tokens_per_s": round(tokens / elapsed),
        "rss_mib_at_doc_100": round(rss[mark], 1),
        "rss_mib_after_first_pass": round(first_pass_end, 1),
        "rss_mib_after_second_pass": round(rss[-1], 1),
        "rss_mib_peak": round(max(rss), 1),
        "rss_growth_in_second_pass": round(growth, 4),
        "lost": lost,
        "ok": growth < 0.05 and not lost,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf8")
    for key, value in results.items():
        typer.echo(f"{key:<26} {value}")
    if not results["ok"]:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
