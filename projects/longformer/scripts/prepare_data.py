"""Training data and checkpoint for the project: real ones when the project's vars name them,
synthetic / random ones otherwise (offline).

    python scripts/prepare_data.py corpus corpus --tasks "textcat ner qa" [--textcat-train X.jsonl ...]
    python scripts/prepare_data.py checkpoint training/checkpoint [--real /models/longformer-base-4096]

`corpus` writes OUT/{task}/train.spacy and OUT/{task}/dev.spacy for each task. A task whose two real
files are given is converted from them:

- textcat: JSONL, one {"text": ..., "cats": {label: score}} a line (`spacy_longformer convert-textcat`);
- ner: .spacy files are copied; CoNLL / IOB / CoNLL-U files go through `python -m spacy convert`;
- qa: SQuAD / TriviaQA-style JSON or JSONL (`spacy_longformer convert-qa`).

Otherwise the task's data is synthetic (`spacy_longformer make-synthetic`): long documents whose signal
lies past their first half. Empty strings mean "not given", so project.yml can pass its vars as they are.

`checkpoint` links OUT to a real checkpoint folder when `--real` names one, and otherwise builds a small
random Longformer there (`spacy_longformer make-checkpoint`), its BPE trained on the texts of
CORPUS/*/train.spacy.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from wasabi import msg

from spacy_longformer import cli

app = typer.Typer(add_completion=False, no_args_is_help=True)

TASKS = ("textcat", "ner", "qa")
# In a random checkpoint this script built, so that a rerun may replace it (and nothing else).
MARKER = ".built-by-project"


def _given(path: str | None) -> Path | None:
    return Path(path) if path and path.strip() else None


def _pair(task: str, train: str | None, dev: str | None) -> tuple[Path, Path] | None:
    """The task's real (train, dev) files, None for synthetic data; both or neither must be given."""
    train_path, dev_path = _given(train), _given(dev)
    if train_path is None and dev_path is None:
        return None
    if train_path is None or dev_path is None:
        msg.fail(
            f"{task}: got only the {'train' if train_path else 'dev'} file: set both "
            f"{task}_train and {task}_dev (or neither, for synthetic data)",
            exits=1,
        )
    for path in (train_path, dev_path):
        if not path.is_file():
            msg.fail(f"{task}: no such file {path}", exits=1)
    return train_path, dev_path


def _write_ner(source: Path, target: Path) -> None:
    if source.suffix == ".spacy":
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        msg.good(f"Copied {source} to {target}")
        return
    with tempfile.TemporaryDirectory(prefix="longformer-ner-") as tmp:
        command = [sys.executable, "-m", "spacy", "convert", str(source), tmp, "--converter", "auto"]
        subprocess.run(command, check=True)
        written = list(Path(tmp).glob("*.spacy"))
        if len(written) != 1:
            msg.fail(f"spacy convert wrote {len(written)} .spacy files for {source}, expected 1", exits=1)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(written[0], target)
    msg.good(f"Converted {source} to {target}")


@app.command("corpus")
def corpus(
    out: Annotated[Path, typer.Argument(help="Folder for {task}/train.spacy and {task}/dev.spacy.")],
    tasks: Annotated[str, typer.Option(help="Tasks, separated by spaces or commas.")] = " ".join(TASKS),
    n_train: Annotated[int, typer.Option(help="Synthetic training docs (textcat, ner).")] = 1000,
    n_train_qa: Annotated[int, typer.Option(help="Synthetic training docs (qa).")] = 1000,
    n_dev: Annotated[int, typer.Option(help="Synthetic development docs.")] = 200,
    n_words: Annotated[int, typer.Option(help="Filler words per synthetic doc.")] = 250,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic data.")] = 0,
    lang: Annotated[str, typer.Option(help="Language of the blank tokenizer.")] = "en",
    textcat_train: Annotated[str, typer.Option(help="Real textcat training JSONL.")] = "",
    textcat_dev: Annotated[str, typer.Option(help="Real textcat development JSONL.")] = "",
    ner_train: Annotated[str, typer.Option(help="Real NER training .spacy (or CoNLL/IOB) file.")] = "",
    ner_dev: Annotated[str, typer.Option(help="Real NER development .spacy (or CoNLL/IOB) file.")] = "",
    qa_train: Annotated[str, typer.Option(help="Real QA training JSON (SQuAD/TriviaQA style).")] = "",
    qa_dev: Annotated[str, typer.Option(help="Real QA development JSON (SQuAD/TriviaQA style).")] = "",
) -> None:
    """Write each task's train.spacy and dev.spacy: converted real data, or synthetic data."""
    chosen = [task for task in tasks.replace(",", " ").split() if task]
    unknown = sorted(set(chosen) - set(TASKS))
    if unknown or not chosen:
        msg.fail(f"Unknown tasks {unknown or chosen}: use some of {', '.join(TASKS)}", exits=1)
    real = {
        "textcat": _pair("textcat", textcat_train, textcat_dev),
        "ner": _pair("ner", ner_train, ner_dev),
        "qa": _pair("qa", qa_train, qa_dev),
    }
    for task in chosen:
        folder = out / task
        files = real[task]
        if files is None:
            msg.info(f"{task}: synthetic data")
            cli.make_synthetic(
                task,
                folder,
                n_train=n_train_qa if task == "qa" else n_train,
                n_dev=n_dev,
                n_words=n_words,
                seed=seed,
                lang=lang,
            )
            continue
        msg.info(f"{task}: real data from {files[0]} and {files[1]}")
        for source, name in zip(files, ("train", "dev"), strict=True):
            target = folder / f"{name}.spacy"
            if task == "textcat":
                cli.convert_textcat(source, target, lang=lang)
            elif task == "qa":
                cli.convert_qa(source, target, lang=lang)
            else:
                _write_ner(source, target)


@app.command("checkpoint")
def checkpoint(
    out: Annotated[Path, typer.Argument(help="The checkpoint folder the training configs read.")],
    real: Annotated[str, typer.Option(help="A real HF Longformer checkpoint folder to link to.")] = "",
    corpus_dir: Annotated[
        Path, typer.Option("--corpus", help="Folder whose */train.spacy texts train the BPE.")
    ] = Path("corpus"),
    hidden_size: Annotated[int, typer.Option(help="Hidden size of the random model.")] = 64,
    layers: Annotated[int, typer.Option(help="Layers of the random model.")] = 2,
    attention_window: Annotated[int, typer.Option(help="Attention window of the random model.")] = 32,
    max_length: Annotated[int, typer.Option(help="Pieces per window of the random model.")] = 512,
    vocab_size: Annotated[int, typer.Option(help="BPE vocabulary size of the random model.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the random weights.")] = 0,
) -> None:
    """Link OUT to a real checkpoint, or build a small random one there."""
    if out.is_symlink():
        out.unlink()
    elif out.exists():
        if any(out.iterdir()) and not (out / MARKER).exists():
            msg.fail(
                f"{out} holds files this script did not write: not replacing them. To train from a "
                f"checkpoint there, pass it as real_checkpoint and leave checkpoint at its default",
                exits=1,
            )
        shutil.rmtree(out)
    real_path = _given(real)
    if real_path is not None:
        if not (real_path / "config.json").is_file():
            msg.fail(f"{real_path} is no checkpoint folder: it holds no config.json", exits=1)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.symlink_to(real_path.resolve(), target_is_directory=True)
        msg.good(f"Linked {out} to the checkpoint {real_path.resolve()}")
        return
    texts = sorted(corpus_dir.glob("*/train.spacy"))
    if not texts:
        msg.warn(f"No {corpus_dir}/*/train.spacy: the BPE trains on built-in synthetic text")
    cli.make_checkpoint(
        out,
        texts=texts,
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        layers=layers,
        heads=4,
        intermediate_size=2 * hidden_size,
        attention_window=attention_window,
        max_length=max_length,
        seed=seed,
    )
    (out / MARKER).write_text("Built by projects/longformer/scripts/prepare_data.py; replaced on a rerun.\n")


if __name__ == "__main__":
    app()
