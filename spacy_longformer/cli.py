"""The command line: ``python -m spacy_longformer COMMAND``.

Commands import torch and the model lazily, so ``--help`` is quick.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer
from wasabi import Printer

app = typer.Typer(
    name="spacy_longformer",
    help="spacy-longformer: a pure-PyTorch Longformer that loads Hugging Face checkpoints.",
    add_completion=False,
    no_args_is_help=True,
)


@app.callback()
def _main() -> None:
    """spacy-longformer: a pure-PyTorch Longformer that loads Hugging Face checkpoints."""


@app.command("demo")
def demo(
    words: Annotated[
        int, typer.Option("--words", min=20, help="Length of the document the pipeline reads, in words.")
    ] = 3000,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder to keep checkpoint/, the trained pipeline/ and the page (default: a temporary one).",
        ),
    ] = None,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html", help="The displaCy page to write (default: longformer-demo.html in --out or here)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the data, the checkpoint and training.")] = 0,
    steps: Annotated[
        int | None,
        typer.Option("--steps", min=1, help="Most training steps (default 150; it stops at dev F 1.0)."),
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="Only the encoder: load a random checkpoint, one forward pass.")
    ] = False,
) -> None:
    """Train a tiny NER pipeline offline and let it read a document far longer than its positions.

    Builds a random checkpoint whose BPE is trained on synthetic NER texts, trains
    longformer_encoder + longformer_ner on them, runs nlp() over a fresh --words document (read
    as overlapping windows), prints the entities with their offsets and windows and their scores
    against the planted names, and writes a displaCy page. Exits 1 if the vectors are not finite
    or the names were not learned.

    --quick: HF folder -> LongformerModel.from_pretrained -> byte-level BPE pieces -> sliding-window
    + global attention -> one vector per piece, and their shapes.
    """
    msg = Printer()
    if quick and (html is not None or steps is not None):
        msg.fail(
            "--html and --steps belong to the NER demo; --quick trains nothing and writes no page", exits=1
        )
    # Before torch loads: OpenMP threads that spin while waiting for each other take the cores from
    # the work when other processes share them (a training step measured 0.2s instead of 10s on
    # two busy cores).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from .demo import run_demo, run_quick

    msg.divider("spacy-longformer demo" + (" (--quick)" if quick else ""))
    if quick:
        ok = run_quick(msg, words=words, seed=seed, out=out)
    else:
        ok = run_demo(msg, words=words, seed=seed, out=out, html=html, max_steps=steps)
    if not ok:
        raise typer.Exit(code=1)


def main() -> None:
    app(prog_name="python -m spacy_longformer")


# --- Training data (NER needs no converter here: `python -m spacy convert` reads CoNLL / IOB) ---------


@app.command("convert-qa")
def convert_qa(
    input_path: Annotated[Path, typer.Argument(help="SQuAD-style .json (official or flat) or .jsonl file.")],
    output_path: Annotated[Path, typer.Argument(help="The .spacy file to write.")],
    lang: Annotated[str, typer.Option("--lang", help="Language of the blank tokenizer.")] = "en",
) -> None:
    """Convert SQuAD-style question answering data to a .spacy file of QA docs.

    Each question becomes a doc reading the question, then its context (`doc.spans["question"]`),
    with its first answer as the one span of `doc.spans["answer"]` (an empty group if unanswerable).
    """
    import spacy

    from .data import read_squad, write_docbin

    msg = Printer()
    try:
        docs = read_squad(spacy.blank(lang), input_path)
    except ValueError as error:
        msg.fail(str(error), exits=1)
    n_answerable = sum(1 for doc in docs if len(doc.spans["answer"]))
    write_docbin(docs, output_path)
    msg.good(
        f"Wrote {len(docs):,} QA docs to {output_path}: {n_answerable:,} answerable, "
        f"{len(docs) - n_answerable:,} unanswerable"
    )


@app.command("convert-textcat")
def convert_textcat(
    input_path: Annotated[
        Path, typer.Argument(help='JSONL file: {"text": ..., "cats": {label: score}} a line.')
    ],
    output_path: Annotated[Path, typer.Argument(help="The .spacy file to write.")],
    lang: Annotated[str, typer.Option("--lang", help="Language of the blank tokenizer.")] = "en",
) -> None:
    """Convert text-classification JSONL (one {"text", "cats"} object a line) to a .spacy file."""
    import spacy

    from .data import read_textcat_jsonl, write_docbin

    msg = Printer()
    try:
        docs = read_textcat_jsonl(spacy.blank(lang), input_path)
    except ValueError as error:
        msg.fail(str(error), exits=1)
    write_docbin(docs, output_path)
    msg.good(f"Wrote {len(docs):,} docs to {output_path}")
    labels = sorted({label for doc in docs for label in doc.cats})
    if labels:
        counts = [(label, sum(1 for doc in docs if doc.cats.get(label, 0.0) >= 0.5)) for label in labels]
        msg.table(counts, header=("label", "docs with score >= 0.5"), divider=True)


@app.command("make-synthetic")
def make_synthetic(
    task: Annotated[str, typer.Argument(help="textcat, ner or qa.")],
    output_dir: Annotated[Path, typer.Argument(help="Folder for train.spacy and dev.spacy.")],
    n_train: Annotated[int, typer.Option("--n-train", min=0, help="Training docs.")] = 1000,
    n_dev: Annotated[int, typer.Option("--n-dev", min=0, help="Development docs.")] = 200,
    n_words: Annotated[int, typer.Option("--n-words", min=20, help="Filler words per doc.")] = 600,
    seed: Annotated[int, typer.Option("--seed", help="Seed: the same arguments give the same files.")] = 0,
    lang: Annotated[str, typer.Option("--lang", help="Language of the blank tokenizer.")] = "en",
) -> None:
    """Write a synthetic long-document task whose signal lies past the first half of each doc.

    textcat: POSITIVE/NEGATIVE, decided by one keyword sentence. ner: PERSON/ORG names among filler.
    qa: "What is the code of KEY?", answered among distractor facts.

    Dev docs follow the train docs in the same seeded stream, so they never repeat them.

    For real NER data, `python -m spacy convert` reads CoNLL/IOB files.
    """
    import spacy
    from tqdm import tqdm

    from .data import SYNTHETIC_TASKS, iter_synthetic, write_docbin

    msg = Printer()
    if task not in SYNTHETIC_TASKS:
        msg.fail(f"Unknown task {task!r}: use one of {', '.join(SYNTHETIC_TASKS)}", exits=1)
    nlp = spacy.blank(lang)
    stream = iter_synthetic(task, nlp, n_train + n_dev, n_words=n_words, seed=seed)
    # disable=None: a bar on a terminal, nothing in logs or pipes.
    docs = list(
        tqdm(stream, total=n_train + n_dev, desc=f"{task} docs", unit="doc", disable=None, leave=False)
    )
    for name, split in (("train", docs[:n_train]), ("dev", docs[n_train:])):
        path = write_docbin(split, output_dir / f"{name}.spacy")
        msg.good(f"Wrote {len(split):,} {task} docs of {n_words:,} filler words to {path}")


@app.command("init-config")
def init_config(
    task: Annotated[str, typer.Argument(help="textcat, textcat_multilabel, ner, ner_transition or qa.")],
    output: Annotated[Path, typer.Argument(help="The config file to write, or - for standard output.")],
    checkpoint: Annotated[
        str | None,
        typer.Option(
            "--checkpoint", help="Checkpoint folder for [paths] longformer (else --paths.longformer)."
        ),
    ] = None,
    gpu: Annotated[
        bool,
        typer.Option("--gpu", help="Mixed precision and batch sizes for a large GPU (train with --gpu-id)."),
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUTPUT if it exists.")] = False,
) -> None:
    """Write a complete `spacy train` config for one of our tasks, from the templates the package
    ships (what `configs/*.cfg` in the repository hold). Our `spacy init config`."""
    from . import init_config as templates

    msg = Printer()
    if task not in templates.TASKS:
        msg.fail(f"Unknown task {task!r}: use one of {', '.join(templates.TASKS)}", exits=1)
    text = templates.init_config(task, checkpoint=checkpoint, gpu=gpu)
    if str(output) == "-":
        typer.echo(text, nl=False)
        return
    if output.exists() and not force:
        msg.fail(f"{output} exists: pass --force to overwrite it, or choose another OUTPUT", exits=1)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf8")
    msg.good(f"Wrote the {task} config to {output}")
    where = "" if checkpoint else " --paths.longformer DIR"
    msg.text(
        f"Train it: python -m spacy train {output} --paths.train TRAIN.spacy --paths.dev DEV.spacy{where}"
    )


# --- Checkpoints ------------------------------------------------------------------------------------


@app.command("convert-roberta")
def convert_roberta(
    src: Annotated[Path, typer.Argument(help="RoBERTa checkpoint folder (config.json + model.safetensors).")],
    dst: Annotated[Path, typer.Argument(help="Folder for the Longformer checkpoint (new or empty).")],
    max_length: Annotated[
        int, typer.Option("--max-length", help="Longest input of the new model, in pieces.")
    ] = 4096,
    attention_window: Annotated[
        list[int] | None,
        typer.Option(
            "--attention-window", help="Even window for all layers (default 512); repeat for one per layer."
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Delete what DST holds first.")] = False,
    allow_pickle: Annotated[
        bool, typer.Option("--allow-pickle", help="Read pytorch_model.bin if there is no safetensors file.")
    ] = False,
) -> None:
    """Turn a RoBERTa checkpoint into a Longformer one, as the Longformer paper did.

    Copies the learned positions over and over up to --max-length, starts the global query/key/value
    projections as copies of the local ones, and copies the tokenizer files. Hidden states equal
    RoBERTa's while every two non-global pieces are at most window / 2 apart (and the input fits
    RoBERTa's positions).
    """
    from .model.convert_roberta import convert_roberta as convert

    msg = Printer()
    windows = attention_window or [512]
    window: int | list[int] = windows[0] if len(windows) == 1 else windows
    start = time.perf_counter()
    try:
        convert(
            src,
            dst,
            max_length=max_length,
            attention_window=window,
            force=force,
            allow_pickle=allow_pickle,
            progress=msg.info,
        )
    except (OSError, ValueError) as error:
        msg.fail(str(error), exits=1)
    files = ", ".join(sorted(p.name for p in dst.iterdir()))
    msg.good(f"Longformer checkpoint written in {time.perf_counter() - start:.1f}s: {dst} ({files})")


@app.command("make-checkpoint")
def make_checkpoint(
    output_dir: Annotated[
        Path, typer.Argument(help="Folder for the checkpoint (config, weights, tokenizer).")
    ],
    texts: Annotated[
        list[Path] | None,
        typer.Option("--texts", help="DocBin (.spacy) or text files whose texts train the BPE; repeatable."),
    ] = None,
    vocab_size: Annotated[int, typer.Option("--vocab-size", min=300, help="BPE vocabulary size.")] = 1000,
    hidden_size: Annotated[int, typer.Option("--hidden-size", min=1, help="Hidden size.")] = 64,
    layers: Annotated[int, typer.Option("--layers", min=1, help="Number of layers.")] = 2,
    heads: Annotated[
        int, typer.Option("--heads", min=1, help="Attention heads (divide the hidden size).")
    ] = 4,
    intermediate_size: Annotated[int, typer.Option("--intermediate-size", min=1, help="FFN size.")] = 128,
    attention_window: Annotated[int, typer.Option("--attention-window", min=2, help="Window (even).")] = 32,
    max_length: Annotated[int, typer.Option("--max-length", min=8, help="Pieces per window.")] = 1024,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the weights.")] = 0,
) -> None:
    """Write a small randomly initialised Longformer checkpoint, offline, in the HF layout.

    For experiments and tests when no pretrained checkpoint is at hand: train its tokenizer on the
    texts you will train on (`--texts train.spacy`), then train from it with a learning rate of
    1e-3 to 3e-3.
    """
    from .random_checkpoint import build_random_checkpoint

    msg = Printer()
    corpus = [_read_texts(path, msg) for path in texts or []]
    path = build_random_checkpoint(
        output_dir,
        texts=[text for part in corpus for text in part] or None,
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate_size,
        attention_window=attention_window,
        max_position_embeddings=max_length + 2,
        seed=seed,
    )
    msg.good(
        f"Wrote a random Longformer ({layers} layers, hidden {hidden_size}, window {attention_window}, "
        f"{max_length} pieces) to {path}"
    )


# --- The masked LM ----------------------------------------------------------------------------------


@app.command("fill-mask")
def fill_mask(
    checkpoint: Annotated[
        Path, typer.Argument(help="Checkpoint folder with a masked-LM head and its tokenizer.")
    ],
    text: Annotated[
        str, typer.Argument(help="Text with one or more <mask>; - reads it from standard input.")
    ],
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Candidates per mask.")] = 5,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print what transformers' fill-mask pipeline returns, as JSON.")
    ] = False,
) -> None:
    """Predict the pieces at each <mask> of TEXT, as transformers' pipeline("fill-mask") does.

    A text longer than one window runs as overlapping windows, each mask read where it has the most
    context. One mask gives a list of candidates, several a list per mask.
    """
    import json

    from .fill_mask import fill_mask as predict

    msg = Printer()
    if text == "-":
        text = typer.get_text_stream("stdin").read().removesuffix("\n")
    try:
        results = predict(checkpoint, text, top_k=top_k)
    except (OSError, ValueError) as error:
        msg.fail(str(error), exits=1)
    if as_json:
        typer.echo(json.dumps(results, indent=2, ensure_ascii=False))  # json: srsly rounds the scores
        return
    per_mask = [results] if results and isinstance(results[0], dict) else results
    for number, candidates in enumerate(per_mask, start=1):
        msg.divider(f"<mask> {number} of {len(per_mask)}")
        rows = [
            (rank, repr(c["token_str"]), f"{c['score']:.4f}", c["token"])
            for rank, c in enumerate(candidates, 1)
        ]
        msg.table(
            rows, header=("#", "token_str", "score", "token"), divider=True, aligns=("r", "l", "r", "r")
        )
    if len(per_mask) == 1:
        msg.text(f"Best: {per_mask[0][0]['sequence']}")


@app.command("pretrain")
def pretrain(
    checkpoint: Annotated[
        Path, typer.Argument(help="HF Longformer checkpoint folder (e.g. from convert-roberta).")
    ],
    corpus: Annotated[
        Path, typer.Argument(help='JSONL ({"text": ...} a line), .txt (a document a line) or .spacy file.')
    ],
    output: Annotated[
        Path, typer.Argument(help="Folder for the pretrained checkpoint and the training state.")
    ],
    max_steps: Annotated[int, typer.Option("--max-steps", min=1, help="Optimizer steps in all.")] = 1000,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="Peak learning rate (the paper: 3e-5).")] = 3e-5,
    warmup_steps: Annotated[
        int | None, typer.Option("--warmup-steps", min=0, help="Warm-up steps (default: 6% of --max-steps).")
    ] = None,
    batch_pieces: Annotated[int, typer.Option("--batch-pieces", min=1, help="Pieces per step.")] = 8192,
    mlm_probability: Annotated[
        float, typer.Option("--mlm-probability", help="Share of the pieces masked (RoBERTa: 0.15).")
    ] = 0.15,
    max_length: Annotated[
        int | None,
        typer.Option("--max-length", min=8, help="Pieces per block (default: the position table)."),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the split, the data order and the masking.")
    ] = 0,
    eval_fraction: Annotated[
        float, typer.Option("--eval-fraction", help="Share of the documents held out for evaluation.")
    ] = 0.05,
    eval_every: Annotated[
        int | None, typer.Option("--eval-every", min=1, help="Steps between evaluations (default: a tenth).")
    ] = None,
    save_every: Annotated[
        int | None,
        typer.Option("--save-every", min=1, help="Steps between saved states (default: --eval-every)."),
    ] = None,
    stop_after: Annotated[
        int | None,
        typer.Option(
            "--stop-after", min=1, help="Stop after this many steps in this run; --resume continues."
        ),
    ] = None,
    precision: Annotated[
        str, typer.Option("--precision", help="auto (bf16 autocast on CUDA, float32 on CPU), fp32 or bf16.")
    ] = "auto",
    gradient_checkpointing: Annotated[
        bool,
        typer.Option("--gradient-checkpointing", help="Recompute layers in the backward pass: less memory."),
    ] = False,
    gpu_id: Annotated[int, typer.Option("--gpu-id", help="CUDA device, or -1 for the CPU.")] = -1,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run saved in OUTPUT.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Delete what OUTPUT holds first.")] = False,
) -> None:
    """Continue masked-LM pretraining on long documents, as the Longformer paper did after conversion.

    RoBERTa's dynamic masking over packed blocks of --max-length pieces, AdamW with warm-up and
    linear decay, the held-out MLM loss every --eval-every steps, and a state in
    OUTPUT/training-state that --resume continues from. OUTPUT is an HF checkpoint with its MLM head.
    """
    # Before torch loads, as for the demo: spinning OpenMP threads take the cores from the work when
    # other processes share them (8 tiny steps: 6.7 s spinning, 1.7 s passive, on two busy cores).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from .pretrain import PretrainSettings
    from .pretrain import pretrain as run_pretraining

    msg = Printer()
    settings = PretrainSettings(
        max_steps=max_steps,
        lr=lr,
        warmup_steps=warmup_steps,
        batch_pieces=batch_pieces,
        mlm_probability=mlm_probability,
        max_length=max_length,
        seed=seed,
        eval_fraction=eval_fraction,
        precision=precision,
        gradient_checkpointing=gradient_checkpointing,
        eval_every=eval_every,
        save_every=save_every,
        stop_after=stop_after,
    )
    device = f"cuda:{gpu_id}" if gpu_id >= 0 else "cpu"
    try:
        result = run_pretraining(
            checkpoint,
            corpus,
            output,
            settings=settings,
            resume=resume,
            force=force,
            device=device,
            say=msg.info,
        )
    except (OSError, ValueError) as error:
        msg.fail(str(error), exits=1)
    losses = f"held-out MLM loss {result.eval_loss_before:.4f} -> {result.eval_loss_after:.4f}"
    if result.finished:
        msg.good(f"Pretrained {result.step:,} steps ({losses}): {output}")
    else:
        msg.good(
            f"Stopped at step {result.step:,} of {max_steps:,} ({losses}); continue with --resume: {output}"
        )


def _read_texts(path: Path, msg: Printer) -> list[str]:
    if not path.exists():
        msg.fail(f"No such file: {path}. Pass DocBin (.spacy) or text files to --texts.", exits=1)
    if path.suffix == ".spacy":
        import spacy
        from spacy.tokens import DocBin

        return [doc.text for doc in DocBin().from_disk(path).get_docs(spacy.blank("xx").vocab)]
    return path.read_text(encoding="utf8").splitlines()


# --- Annotating a corpus ------------------------------------------------------------------------------


@app.command("annotate")
def annotate_corpus(
    pipeline: Annotated[
        str, typer.Argument(help="Saved pipeline folder (nlp.to_disk, spacy train) or installed package.")
    ],
    input_path: Annotated[
        Path,
        typer.Argument(
            help='JSONL file ({"text": ..., "meta": {...}} a line), .txt or .spacy file, or a folder of them.'
        ),
    ],
    output: Annotated[
        Path, typer.Argument(help="Folder for the .spacy shards and manifest.json; a rerun resumes it.")
    ],
    num_actors: Annotated[
        int, typer.Option("--num-actors", help="Ray actors, each holding the pipeline once.")
    ] = 1,
    gpus_per_actor: Annotated[
        float, typer.Option("--gpus-per-actor", help="GPUs per actor (0.5: two share one); needs CuPy.")
    ] = 0.0,
    cpus_per_actor: Annotated[
        float, typer.Option("--cpus-per-actor", help="CPUs per actor, which are its torch threads.")
    ] = 1.0,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Docs per nlp.pipe batch in an actor.")
    ] = 16,
    shard_size: Annotated[
        int,
        typer.Option(
            "--shard-size", help="Records per shard: the unit of output, retry and resume, held by one actor."
        ),
    ] = 100,
    text_key: Annotated[str, typer.Option("--text-key", help="Key of the text in JSONL records.")] = "text",
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="Ray cluster to join (HEAD:6379, ray://HEAD:10001); default: Ray on this machine.",
        ),
    ] = None,
) -> None:
    """Annotate a corpus with a saved pipeline on Ray Data: sharded, resumable, nothing lost.

    Writes OUTPUT/shard-NNNNNN.spacy (DocBins with user data: each record's meta, other fields and
    its source and line) and OUTPUT/manifest.json (counts, timings, actors' peak memory, and every
    record that failed, with its 1-based line, source and error). Rerun the same command to resume
    an interrupted run: written shards are skipped. Exits 1 if a shard's worker died on every
    attempt (a rerun retries it).
    """
    from .annotate import MANIFEST, annotate

    msg = Printer()
    try:
        manifest = annotate(
            pipeline,
            input_path,
            output,
            num_actors=num_actors,
            gpus_per_actor=gpus_per_actor,
            cpus_per_actor=cpus_per_actor,
            batch_size=batch_size,
            shard_size=shard_size,
            text_key=text_key,
            address=address,
        )
    except (ImportError, ValueError, RuntimeError) as error:
        msg.fail(str(error), exits=1)
    counts, timings = manifest["counts"], manifest["timings"]
    resumed = f", {counts['shards_resumed']:,} of them from earlier runs" if counts["shards_resumed"] else ""
    msg.good(
        f"{counts['written']:,} of {counts['records']:,} records annotated into {output}: "
        f"{counts['shards_written']:,} of {counts['shards']:,} shards{resumed}"
    )
    msg.table(
        [
            ("docs this run", f"{timings['docs']:,}"),
            ("tokens this run", f"{timings['tokens']:,}"),
            ("docs/s", f"{timings['docs_per_second']:.2f}"),
            ("tokens/s", f"{timings['tokens_per_second']:,.0f}"),
            (
                "seconds: start-up, annotating",
                f"{timings['startup_seconds']:.1f}, {timings['annotate_seconds']:.1f}",
            ),
        ],
        divider=True,
    )
    if manifest["actors"]:
        rows = [
            (
                actor["actor"][:12],
                actor["node"],
                actor["shards"],
                actor["docs"],
                f"{actor['docs'] / actor['seconds']:.2f}" if actor["seconds"] else "-",
                f"{actor['peak_rss_bytes'] / 2**20:,.0f}",
                f"{actor.get('peak_gpu_bytes', 0) / 2**20:,.0f}",
            )
            for actor in manifest["actors"]
        ]
        header = ("actor", "node", "shards", "docs", "docs/s busy", "peak RSS MiB", "peak GPU MiB")
        msg.table(rows, header=header, divider=True)
    if counts["failed"]:
        msg.warn(
            f'{counts["failed"]:,} records failed: "failed" in {output / MANIFEST} lists each, for example:'
        )
        for entry in manifest["failed"][:3]:
            msg.text(f"  {entry['source']} line {entry['line']}: {entry['error']}")
    if not manifest["complete"]:
        msg.fail(
            f"{counts['shards_lost']:,} shards were not written: their worker died on every attempt. "
            "Rerun the same command to retry them.",
            exits=1,
        )


# --- Export -----------------------------------------------------------------------------------------


@app.command("export")
def export(
    source: Annotated[
        Path,
        typer.Argument(
            help="HF checkpoint folder (config.json + model.safetensors) or saved pipeline folder (nlp.to_disk)."
        ),
    ],
    out: Annotated[
        Path, typer.Argument(help="Folder for model.onnx or model.pt2, config.json and the tokenizer files.")
    ],
    export_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="onnx (OUT/model.onnx, onnxruntime) or torch-export (OUT/model.pt2, torch.export).",
        ),
    ] = "onnx",
    dtype: Annotated[
        str, typer.Option("--dtype", help="Weights' and compute dtype: fp32, or bf16 (torch-export only).")
    ] = "fp32",
    quantize: Annotated[
        str | None,
        typer.Option(
            "--quantize",
            help="int8 (onnx only): also write OUT/model.int8.onnx (dynamic int8 MatMul weights).",
        ),
    ] = None,
    component: Annotated[
        str | None,
        typer.Option("--component", help="With a pipeline: whose encoder (default: the first that has one)."),
    ] = None,
    opset: Annotated[int, typer.Option("--opset", min=18, help="ONNX opset (--format onnx).")] = 18,
) -> None:
    """Export a Longformer encoder (or a checkpoint's supported head) to ONNX or torch.export.

    Inputs input_ids, attention_mask, global_attention_mask: int64 (batch, seq), any batch, length
    and number of global tokens; outputs last_hidden_state, plus a head checkpoint's logits, all
    float32. config.json and the tokenizer files go beside it. From a pipeline the encoder of a
    longformer_encoder or longformer_* component is exported (a task's head is not).

    --format onnx writes OUT/model.onnx, float32 (onnxruntime's CPU provider has no bf16 kernels).
    --quantize int8 adds model.int8.onnx: smaller, faster on CPU, not exact (activations are
    quantized per batch, so a doc's states also move a little with its batch). Run it in spaCy
    with the encoder's `backend = "onnxruntime"` and `onnx_path = "OUT/model.onnx"`.

    --format torch-export writes OUT/model.pt2 (torch.export.save), fp32 or --dtype bf16 (bf16
    weights and compute, float32 outputs). Run it with torch alone:
    `torch.export.load("OUT/model.pt2").module()(input_ids, attention_mask, global_attention_mask)`.
    """
    import logging
    import shutil

    from .errors import Errors

    msg = Printer()
    for option, value, supported in (
        ("--format", export_format, ("onnx", "torch-export")),
        ("--dtype", dtype, ("fp32", "bf16")),
        ("--quantize", quantize or "int8", ("int8",)),
    ):
        if value not in supported:
            msg.fail(Errors.LF199.format(option=option, value=value, supported=", ".join(supported)), exits=1)
    if export_format == "onnx" and dtype == "bf16":
        msg.fail(Errors.LF202, exits=1)
    if export_format == "torch-export" and quantize:
        msg.fail(Errors.LF203, exits=1)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads (see `demo`)
    import torch

    from .model.export import ONNX_NAME, export_onnx, export_torch, quantize_int8

    folder = source
    if (source / "config.cfg").is_file():  # a saved pipeline: its components keep encoders in NAME/encoder
        from spacy.util import load_config

        names = list(load_config(source / "config.cfg", interpolate=False)["nlp"]["pipeline"])
        found = [name for name in names if (source / name / "encoder" / "config.json").is_file()]
        if component is not None:
            found = [name for name in found if name == component]
        if not found:
            what = f"component {component!r} of " if component else "the components of "
            msg.fail(Errors.LF174.format(found=f"{what}the pipeline {source} ({', '.join(names)})"), exits=1)
        folder = source / found[0] / "encoder"
        msg.info(f"Exporting the encoder of component {found[0]!r} ({folder})")
    has_graph = (folder / ONNX_NAME).is_file()  # an encoder saved with backend = "onnxruntime"
    if has_graph and export_format == "torch-export":
        msg.fail(Errors.LF206.format(path=folder), exits=1)
    start = time.perf_counter()
    try:
        if export_format == "torch-export":
            path = export_torch(folder, out, dtype=torch.bfloat16 if dtype == "bf16" else torch.float32)
        elif has_graph:
            out.mkdir(parents=True, exist_ok=True)
            for file in folder.iterdir():
                if file.is_file():
                    shutil.copyfile(file, out / file.name)
            path = out / ONNX_NAME
            msg.info(f"{folder} already holds an ONNX graph: copied it")
        else:
            path = export_onnx(folder, out, opset=opset)
    except (OSError, ValueError) as error:
        msg.fail(str(error), exits=1)
    msg.good(
        f"Wrote {path} ({path.stat().st_size / 2**20:,.1f} MiB, {dtype}) in {time.perf_counter() - start:.1f}s"
    )
    if quantize:
        start = time.perf_counter()
        logging.disable(logging.WARNING)  # onnxruntime's quantizer warns on every non-float tensor
        try:
            int8_path = quantize_int8(path, out / "model.int8.onnx")
        except ImportError as error:
            msg.fail(str(error), exits=1)
        finally:
            logging.disable(logging.NOTSET)
        msg.good(
            f"Wrote {int8_path} ({int8_path.stat().st_size / 2**20:,.1f} MiB, int8) in "
            f"{time.perf_counter() - start:.1f}s"
        )
    msg.text(f"Files in {out}: {', '.join(sorted(p.name for p in out.iterdir()))}")
    if export_format == "torch-export":
        msg.text(
            f'Run it with torch alone: model = torch.export.load("{path}").module(), then '
            "model(input_ids, attention_mask, global_attention_mask) -> (last_hidden_state, ...), "
            "float32 (or spacy_longformer.model.export.load_exported). The spaCy encoder runs the "
            f'checkpoint itself (dtype = "bfloat16" for bf16) or an ONNX export, not {path.name}.'
        )
    else:
        msg.text(f'Run it in spaCy: backend = "onnxruntime", onnx_path = "{path}" in the encoder\'s block')
