"""``python -m spacy_longformer demo``: a spaCy pipeline trained offline reads a long document.

The default run shows the package's main job in about a minute on a CPU, with nothing downloaded:

1. synthetic long-document NER docs (``spacy_longformer.data``), and a random checkpoint whose
   byte-level BPE is trained on their texts (``build_random_checkpoint``);
2. ``longformer_encoder`` + ``longformer_ner`` (a listener) trained with ``nlp.update``;
3. ``nlp(text)`` over a fresh document many times longer than the position table, which the
   encoder reads as overlapping windows;
4. the entities it found, with their offsets and windows, scored against the planted names, and a
   displaCy page.

``run_quick`` is the encoder alone: checkpoint -> ``LongformerModel.from_pretrained`` -> one
forward pass -> shapes and a finiteness check.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from itertools import islice
from pathlib import Path

import numpy as np
import spacy
import torch
from spacy import displacy
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from spacy.training.loop import create_train_batches
from spacy.util import fix_random_seed, minibatch
from thinc.api import Adam
from wasabi import Printer

from .data import iter_synthetic
from .ml.alignment import piece_bounds, window_owners
from .model import LongformerModel
from .random_checkpoint import build_random_checkpoint, synthetic_text
from .tokenization import LongformerTokenizer

# Small enough to train in well under a minute of CPU; the position table (256 pieces) is a
# fraction of the document, so nlp() reads it as many windows. The BPE covers the synthetic
# vocabulary with whole words, so pieces and tokens line up.
CHECKPOINT_SIZES = {
    "vocab_size": 600,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
    "attention_window": 32,
    "max_position_embeddings": 258,
}
# 360 words: three names of each label per doc, so every name of the closed lists is seen in
# training (at 200 words one a label, some seeds never showed "Hiro"), and two windows per doc.
N_TRAIN = 24
N_DEV = 8
TRAIN_WORDS = 360
BATCH_SIZE = 2
DROPOUT = 0.1
# A tiny random checkpoint learns at 1e-3 to 3e-3 (a pretrained one wants ~5e-5).
LEARN_RATE = 2e-3
MAX_STEPS = 150
EVAL_EVERY = 10
# Below this F on the long document, training did not learn the names: the demo fails.
MIN_F = 0.5
HTML_NAME = "longformer-demo.html"
# Entity rows printed at most (the page shows them all).
MAX_ROWS = 80


def run_demo(
    msg: Printer,
    *,
    words: int,
    seed: int,
    out: Path | None = None,
    html: Path | None = None,
    max_steps: int | None = None,
) -> bool:
    """Train a tiny NER pipeline, let it read a ``words``-word document and report what it found.

    out: keeps ``checkpoint/``, the trained ``pipeline/`` (for ``spacy.load``) and the page; by
    default a temporary folder. html: the displaCy page (default ``out/longformer-demo.html``, or
    ``longformer-demo.html`` in the current folder). max_steps: training stops at dev F 1.0 or
    after this many updates (default ``MAX_STEPS``). Returns False, having said why, when the
    vectors are not finite or the entities found score below ``MIN_F``.
    """
    html = html or (out or Path.cwd()) / HTML_NAME
    _use_all_cpus()
    fix_random_seed(seed)
    nlp = spacy.blank("en")
    with _folder(out) as folder:
        msg.info(
            f"Step 1/5: {N_TRAIN} synthetic NER docs of {TRAIN_WORDS} words (PERSON and ORG names "
            f"among filler) to train on, {N_DEV} held out, and a random checkpoint in {folder}"
        )
        start = time.perf_counter()
        train, dev = _examples(nlp, seed=seed)
        checkpoint = build_random_checkpoint(
            folder / "checkpoint", texts=[eg.reference.text for eg in train], seed=seed, **CHECKPOINT_SIZES
        )
        _add_pipes(nlp, checkpoint)
        msg.good(
            f"Checkpoint in {time.perf_counter() - start:.1f}s: BPE of {CHECKPOINT_SIZES['vocab_size']} "
            f"pieces trained on the training texts, {_describe_sizes()}"
        )

        max_steps = MAX_STEPS if max_steps is None else max_steps
        msg.info(
            f"Step 2/5: training {' + '.join(nlp.pipe_names)} (listener) with nlp.update: Adam "
            f"lr {LEARN_RATE:g}, batches of {BATCH_SIZE}, until dev F is 1.0 or {max_steps} steps"
        )
        dev_scores = _train(msg, nlp, train, dev, max_steps=max_steps)

        msg.info(f"Step 3/5: nlp() over a fresh synthetic doc of {words:,} words")
        # Stream seed + 1: training and dev docs come from stream `seed`, so this one is new.
        gold = next(iter_synthetic("ner", nlp, 1, n_words=words, seed=seed + 1))
        start = time.perf_counter()
        doc = nlp(gold.text)
        elapsed = time.perf_counter() - start
        data = doc._.longformer
        msg.good(
            f"{len(doc):,} tokens -> {data.n_pieces:,} pieces, read as {len(data.windows)} windows of at "
            f"most {CHECKPOINT_SIZES['max_position_embeddings'] - 2} pieces in {elapsed:.2f}s "
            f"({data.n_pieces / max(elapsed, 1e-9):,.0f} pieces/s)"
        )
        windows = _report_entities(msg, doc, gold)

        msg.info("Step 4/5: scores against the planted names")
        scores = nlp.get_pipe("longformer_ner").score([Example(doc, gold)])
        rows = [
            (label, f"{s['p']:.2f}", f"{s['r']:.2f}", f"{s['f']:.2f}")
            for label, s in sorted(scores["ents_per_type"].items())
        ]
        rows.append(("all", f"{scores['ents_p']:.2f}", f"{scores['ents_r']:.2f}", f"{scores['ents_f']:.2f}"))
        msg.table(rows, header=("this doc", "P", "R", "F"), divider=True, aligns=("l", "r", "r", "r"))
        msg.text(f"Held-out dev docs: F {dev_scores['ents_f']:.2f}")

        msg.info("Step 5/5: a displaCy page of the result")
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(displacy.render(doc, style="ent", page=True, jupyter=False), encoding="utf8")
        msg.good(f"Wrote {html} (open it in a browser)")
        if out is not None:
            nlp.to_disk(folder / "pipeline")
            msg.good(f"Saved the trained pipeline to {folder / 'pipeline'} (spacy.load it)")
    return _check(msg, doc, scores["ents_f"], windows)


def _use_all_cpus() -> None:
    """Torch may default to fewer threads than the CPUs this process may run on; never go below."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    torch.set_num_threads(max(torch.get_num_threads(), cpus))


@contextmanager
def _folder(out: Path | None) -> Iterator[Path]:
    """``out`` (created), or a temporary folder removed afterwards."""
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        yield out
        return
    with tempfile.TemporaryDirectory(prefix="spacy-longformer-demo-") as tmp:
        yield Path(tmp)


def _examples(nlp: Language, *, seed: int) -> tuple[list[Example], list[Example]]:
    """Training and dev examples; dev docs follow the training docs in the seeded stream."""
    docs = iter_synthetic("ner", nlp, N_TRAIN + N_DEV, n_words=TRAIN_WORDS, seed=seed)
    examples = [Example(nlp.make_doc(doc.text), doc) for doc in docs]
    return examples[:N_TRAIN], examples[N_TRAIN:]


def _add_pipes(nlp: Language, checkpoint: Path) -> None:
    """The encoder as its own pipe (so ``doc._.longformer`` shows the windows) and NER listening."""
    # A quarter of this small model's 254-piece window shared between neighbours (the default, 256,
    # suits base checkpoints' 4,096 positions and would be cut here, with a warning).
    encoder = {"name": str(checkpoint), "window_overlap": 64}
    nlp.add_pipe("longformer_encoder", config={"model": encoder})
    listener = {"@architectures": "spacy-longformer.LongformerListener.v1", "upstream": "longformer_encoder"}
    nlp.add_pipe("longformer_ner", config={"model": {"encoder": listener}})


def _describe_sizes() -> str:
    sizes = CHECKPOINT_SIZES
    return (
        f"{sizes['num_hidden_layers']} layers, hidden {sizes['hidden_size']}, attention window "
        f"{sizes['attention_window']}, {sizes['max_position_embeddings'] - 2} positions"
    )


def _train(
    msg: Printer, nlp: Language, train: list[Example], dev: list[Example], *, max_steps: int
) -> dict[str, float]:
    """Update until the dev F reaches 1.0 or ``max_steps`` (>= 1), printing the mean loss and the
    dev scores every ``EVAL_EVERY`` steps and at the last; returns the last dev scores."""
    optimizer = Adam(LEARN_RATE)
    nlp.initialize(lambda: train, sgd=optimizer)
    widths = (5, 8, 6, 6, 6, 8)
    aligns = ("r",) * len(widths)
    msg.row(("step", "loss", "dev P", "dev R", "dev F", "seconds"), widths=widths, aligns=aligns)
    msg.row(["-" * w for w in widths], widths=widths)
    start = time.perf_counter()
    losses: dict[str, float] = {}
    last_eval = 0
    # max_epochs=0: epoch after epoch, reshuffled each time with the seeded `random`.
    batches = create_train_batches(nlp, lambda _: train, partial(minibatch, size=BATCH_SIZE), max_epochs=0)
    for step, (_, batch) in enumerate(islice(batches, max_steps), start=1):
        nlp.update(batch, sgd=optimizer, drop=DROPOUT, losses=losses)
        if step % EVAL_EVERY and step != max_steps:
            continue
        scores = nlp.evaluate(dev)
        loss = losses["longformer_ner"] / (step - last_eval)
        row = (step, f"{loss:.4f}", *(f"{scores[k]:.2f}" for k in ("ents_p", "ents_r", "ents_f")))
        msg.row((*row, f"{time.perf_counter() - start:.1f}"), widths=widths, aligns=aligns)
        losses, last_eval = {}, step
        if scores["ents_f"] == 1.0:
            break
    msg.good(f"Trained {step} steps in {time.perf_counter() - start:.1f}s: dev F {scores['ents_f']:.2f}")
    return scores


def _report_entities(msg: Printer, doc: Doc, gold: Doc) -> list[int]:
    """A table of the entities found: offsets, the window their first piece was read in (the one
    where it had the most context), and whether it is a planted name. Returns their windows."""
    data = doc._.longformer
    owners = window_owners(data.windows, data.n_pieces)
    first_piece, _ = piece_bounds(data.alignment)
    planted = {(ent.start_char, ent.end_char, ent.label_) for ent in gold.ents}
    windows = [int(owners[first_piece[ent.start]]) for ent in doc.ents]
    rows = [
        (
            ent.text,
            ent.label_,
            f"{ent.start}-{ent.end}",
            f"{ent.start_char}-{ent.end_char}",
            window,
            "yes" if (ent.start_char, ent.end_char, ent.label_) in planted else "NO",
        )
        for ent, window in zip(doc.ents, windows, strict=True)
    ]
    if len(rows) > MAX_ROWS:  # an untrained model tags much of the doc: show both ends
        half = MAX_ROWS // 2
        rows = [*rows[:half], (f"... {len(rows) - 2 * half} more", "", "", "", "", ""), *rows[-half:]]
    header = ("entity", "label", "tokens", "chars", "window", "planted")
    msg.table(rows, header=header, divider=True, aligns=("l", "l", "r", "r", "r", "l"))
    past = sum(1 for window in windows if window > 0)
    msg.text(
        f"Windows used: {len(data.windows)}. Entities found: {len(doc.ents)} ({len(gold.ents)} "
        f"planted), {past} of them past the first window."
    )
    return windows


def _check(msg: Printer, doc: Doc, f_score: float, windows: list[int]) -> bool:
    """Say what went wrong, if anything: non-finite vectors, or names not learned."""
    problems = []
    if not (np.isfinite(doc.tensor).all() and np.isfinite(doc._.longformer.last_hidden_state).all()):
        problems.append("some piece or token vectors hold NaN or inf")
    if not doc.ents:
        problems.append("training found no entity in the document: try more --steps or another --seed")
    elif f_score < MIN_F:
        problems.append(
            f"the entities found score F {f_score:.2f} against the planted ones, below {MIN_F}: "
            "training did not learn the names; try more --steps or another --seed"
        )
    for problem in problems:
        msg.fail(problem)
    if not problems:
        msg.good(
            f"All vectors finite; F {f_score:.2f} on a doc read as {len(doc._.longformer.windows)} "
            f"windows, entities found as far as window {max(windows)}"
        )
    return not problems


def run_quick(msg: Printer, *, words: int, seed: int, out: Path | None = None) -> bool:
    """The encoder alone: build the default random checkpoint (``out/checkpoint``, by default in a
    temporary folder), load it, run one forward pass over ``words`` words of synthetic text (cut to
    the position table) and show shapes. Returns False when a vector is not finite."""
    _use_all_cpus()
    with _folder(out) as folder:
        return _quick(msg, folder / "checkpoint", words=words, seed=seed)


def _quick(msg: Printer, path: Path, *, words: int, seed: int) -> bool:
    msg.info(f"Step 1/4: building a random checkpoint in {path} (BPE tokenizer + random weights)")
    start = time.perf_counter()
    build_random_checkpoint(path, seed=seed)
    files = ", ".join(sorted(p.name for p in path.iterdir()))
    msg.good(f"Checkpoint written in {time.perf_counter() - start:.2f}s: {files}")

    msg.info(f"Step 2/4: loading it with LongformerModel.from_pretrained({str(path)!r})")
    start = time.perf_counter()
    model = LongformerModel.from_pretrained(path).eval()
    tokenizer = LongformerTokenizer.from_pretrained(path)
    config = model.config
    n_params = sum(p.numel() for p in model.parameters())
    msg.good(f"Loaded in {time.perf_counter() - start:.2f}s")
    msg.table(
        [
            ("vocab_size", config.vocab_size),
            ("hidden_size", config.hidden_size),
            ("num_hidden_layers", config.num_hidden_layers),
            ("num_attention_heads", config.num_attention_heads),
            ("intermediate_size", config.intermediate_size),
            ("attention_window (per layer)", ", ".join(map(str, config.attention_window))),
            ("max_position_embeddings", config.max_position_embeddings),
            ("parameters", f"{n_params:,}"),
        ],
        header=("config", "value"),
        divider=True,
    )

    msg.info(f"Step 3/4: tokenising a synthetic document of {words:,} words")
    text = synthetic_text(words, seed=seed)
    ids = list(tokenizer.encode(text).ids)
    if not ids or ids[0] != config.bos_token_id:
        ids.insert(0, config.bos_token_id)
    if ids[-1] != config.eos_token_id:
        ids.append(config.eos_token_id)
    limit = config.max_tokens
    if len(ids) > limit:
        msg.warn(
            f"{len(ids):,} pieces, more than the {limit:,} that max_position_embeddings allows: "
            f"keeping the first {limit:,} (use fewer --words)"
        )
        ids = ids[: limit - 1] + [config.eos_token_id]
    msg.good(f"{len(text):,} characters -> {len(ids):,} pieces (<s> ... </s>)")

    windows = [f"{w} (+/-{w // 2})" for w in config.attention_window]
    msg.info(
        f"Step 4/4: forward pass over {len(ids):,} pieces, <s> global, "
        f"attention windows per layer: {', '.join(windows)}"
    )
    input_ids = torch.tensor([ids], dtype=torch.long)
    attention_mask = torch.ones_like(input_ids)
    global_attention_mask = torch.zeros_like(input_ids)
    global_attention_mask[:, 0] = 1
    start = time.perf_counter()
    with torch.no_grad():
        output = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            global_attention_mask=global_attention_mask,
        )
    elapsed = time.perf_counter() - start
    states = output.last_hidden_state
    msg.good(f"Forward pass in {elapsed:.2f}s ({len(ids) / max(elapsed, 1e-9):,.0f} pieces/s)")
    msg.table(
        [
            ("last_hidden_state shape", tuple(states.shape)),
            ("first vector (<s>), values 0-3", _head(states[0, 0])),
            ("last vector (</s>), values 0-3", _head(states[0, -1])),
            ("norm of first / last vector", f"{states[0, 0].norm():.4f} / {states[0, -1].norm():.4f}"),
            ("std over all values", f"{states.std():.4f}"),
        ],
        header=("output", "value"),
        divider=True,
    )
    finite = bool(torch.isfinite(states).all())
    if finite:
        msg.good(f"All {states.shape[1]:,} vectors are finite")
    else:
        bad = int((~torch.isfinite(states)).any(dim=-1).sum())
        msg.fail(f"{bad:,} of {states.shape[1]:,} vectors hold NaN or inf")
    return finite


def _head(vector: torch.Tensor, n: int = 4) -> str:
    return " ".join(f"{value:+.4f}" for value in vector[:n].tolist())
