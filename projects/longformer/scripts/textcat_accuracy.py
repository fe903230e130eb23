"""Dev accuracy of trained text classifiers, side by side: the global-attention ablation's table.

    python scripts/textcat_accuracy.py corpus/textcat/dev.spacy metrics/global_attention.json \
        with_global=training/textcat/model-best no_global=training/textcat-noglobal/model-best

Accuracy is the share of dev docs whose highest-scoring label is the gold one (spaCy's textcat
scorer reports F-scores and AUC, not accuracy).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import spacy
import typer
from spacy.tokens import DocBin
from tqdm import tqdm


def main(
    dev: Annotated[Path, typer.Argument(help="Gold dev DocBin with doc.cats.")],
    out: Annotated[Path, typer.Argument(help="JSON file to write.")],
    models: Annotated[list[str], typer.Argument(help="NAME=PIPELINE_DIR pairs.")],
) -> None:
    results = {}
    for item in models:
        name, _, path = item.partition("=")
        nlp = spacy.load(path)
        gold = list(DocBin().from_disk(dev).get_docs(nlp.vocab))
        predicted = nlp.pipe(doc.text for doc in gold)
        correct = sum(
            max(doc.cats, key=doc.cats.get) == max(ref.cats, key=ref.cats.get)
            for doc, ref in tqdm(zip(predicted, gold, strict=True), total=len(gold), desc=name, disable=None)
        )
        results[name] = {"accuracy": correct / len(gold), "docs": len(gold), "pipeline": path}
        typer.echo(f"{name}: accuracy {correct / len(gold):.3f} on {len(gold)} dev docs")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf8")


if __name__ == "__main__":
    typer.run(main)
