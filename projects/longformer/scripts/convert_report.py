"""The `convert` workflow's table: what continued MLM pretraining of a converted RoBERTa gives.

    python scripts/convert_report.py training/roberta-longformer-pretrained/pretraining.json \
        metrics/convert_textcat.json metrics/convert.json --plot metrics/pretrain_loss.png

Reads the held-out MLM loss that `pretrain` logged (before: step 0; after: its last evaluation) and the
dev accuracy of the textcat trained from each checkpoint (`textcat_accuracy.py`'s JSON, entries
`no_pretraining` and `pretraining`), writes both to one JSON file, prints the table as Markdown, and
plots the held-out loss by step.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def main(
    log: Annotated[Path, typer.Argument(help="pretraining.json that `pretrain` wrote.")],
    accuracy: Annotated[
        Path, typer.Argument(help="textcat_accuracy.py's JSON: no_pretraining, pretraining.")
    ],
    out: Annotated[Path, typer.Argument(help="JSON file to write.")],
    plot: Annotated[Path | None, typer.Option(help="PNG of the held-out MLM loss by step.")] = None,
) -> None:
    run = json.loads(log.read_text(encoding="utf8"))
    scores = json.loads(accuracy.read_text(encoding="utf8"))
    history = run["history"]
    report = {
        "mlm_loss_before": history[0]["eval_loss"],
        "mlm_loss_after": history[-1]["eval_loss"],
        "pretraining_steps": run["step"],
        "pieces_per_second": run["pieces_per_second"],
        "accuracy_without_pretraining": scores["no_pretraining"]["accuracy"],
        "accuracy_with_pretraining": scores["pretraining"]["accuracy"],
        "dev_docs": scores["pretraining"]["docs"],
        "history": history,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf8")
    typer.echo("| textcat trained from | pretraining steps | held-out MLM loss | dev accuracy |")
    typer.echo("| --- | ---: | ---: | ---: |")
    for name, steps, loss, key in (
        ("the converted RoBERTa", 0, report["mlm_loss_before"], "accuracy_without_pretraining"),
        (
            "the converted RoBERTa, pretrained",
            run["step"],
            report["mlm_loss_after"],
            "accuracy_with_pretraining",
        ),
    ):
        typer.echo(f"| {name} | {steps:,} | {loss:.3f} | {report[key]:.3f} |")
    if plot is not None:
        from matplotlib.figure import Figure

        figure = Figure(figsize=(6, 3.5), layout="constrained")
        axes = figure.subplots()
        axes.plot([h["step"] for h in history], [h["eval_loss"] for h in history], marker="o")
        axes.set_xlabel("pretraining step")
        axes.set_ylabel("held-out MLM loss")
        axes.set_title("Continued MLM pretraining of the converted RoBERTa", fontsize=10)
        plot.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(plot, dpi=120)
        typer.echo(f"Wrote {out} and {plot}")


if __name__ == "__main__":
    typer.run(main)
