"""Continued masked-LM pretraining on long documents: the Longformer recipe after ``convert-roberta``.

Beltagy et al. (2020) convert RoBERTa, then continue its MLM pretraining on long documents so that
the tiled positions and the sliding windows learn to work together. This module does that on a
corpus of your own, and writes an HF checkpoint (config, safetensors, tokenizer) with its MLM head,
which transformers' ``LongformerForMaskedLM`` and our components load.

- Corpus: JSONL (``{"text": ...}`` a line), ``.txt`` (one document a line) or ``.spacy`` (a DocBin).
  Documents are tokenized without specials and packed as RoBERTa packs them: one stream with
  ``</s>`` between documents, cut into blocks of ``max_length - 2`` pieces, each read as
  ``<s> block </s>``. A seeded share of the *documents* is held out for evaluation.
- Masking: RoBERTa's dynamic masking, drawn afresh for every batch: each piece that is not a special
  token is chosen with ``mlm_probability``; a chosen piece becomes ``<mask>`` (80%), a random piece
  (10%) or stays (10%); the loss is the cross-entropy over the chosen pieces. The held-out blocks
  are masked once, from the seed alone, so their loss compares across steps and across runs.
- Optimisation: AdamW (RoBERTa's betas and epsilon, no weight decay on biases and norms), linear
  warm-up then linear decay to 0 at ``max_steps`` (transformers' ``get_linear_schedule_with_warmup``),
  gradients clipped to norm 1. The vocabulary projection runs on the masked pieces only.
- State: every ``save_every`` steps ``OUTPUT/training-state/`` gets the weights, the optimizer's and
  the schedule's states, the random states and the step; ``resume`` continues from it and gives what
  an uninterrupted run gives. The data order is a function of the seed and the step alone.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm import tqdm

from .data import _check_file, _read_jsonl
from .errors import Errors
from .model import LongformerForMaskedLM
from .model.hf_checkpoint import read_head
from .tokenization import SPECIAL_TOKEN_ROLES, LongformerTokenizer

STATE_DIR = "training-state"
LOG_FILE = "pretraining.json"
CORPUS_SUFFIXES = (".jsonl", ".txt", ".spacy")
IGNORED = -100  # label of the pieces that take no loss
# The settings that decide the numbers: a resumed run must keep them.
RUN_SETTINGS = (
    "max_steps",
    "lr",
    "warmup_steps",
    "batch_pieces",
    "mlm_probability",
    "max_length",
    "seed",
    "eval_fraction",
    "weight_decay",
    "precision",
)


@dataclass(frozen=True)
class PretrainSettings:
    """How to pretrain; each field is the command's option of the same name.

    ``max_length``: pieces per block, ``<s>``/``</s>`` included (default: what the position table
    holds). ``batch_pieces``: pieces per step (``batch_pieces // max_length`` blocks, at least one).
    ``warmup_steps``: default 6% of ``max_steps`` (RoBERTa's share). ``precision``: ``auto`` is
    bf16 autocast on a CUDA device that supports it and float32 on CPU, where bf16 autocast made
    a step slower on the CPUs we measured (README). ``eval_every`` / ``save_every``: steps between
    evaluations / saved states (default: a tenth of the run). ``stop_after``: stop after this many
    steps in this run, saving the state, while the schedule still runs to ``max_steps`` (for jobs
    with a time limit; continue with ``resume``).
    """

    max_steps: int = 1000
    lr: float = 3e-5
    warmup_steps: int | None = None
    batch_pieces: int = 8192
    mlm_probability: float = 0.15
    max_length: int | None = None
    seed: int = 0
    eval_fraction: float = 0.05
    weight_decay: float = 0.01
    precision: str = "auto"
    gradient_checkpointing: bool = False
    eval_every: int | None = None
    save_every: int | None = None
    stop_after: int | None = None

    def check(self) -> None:
        for name, minimum in (("max_steps", 1), ("batch_pieces", 1), ("max_length", 8)):
            _check_int(name, getattr(self, name), minimum, optional=name == "max_length")
        for name in ("warmup_steps", "eval_every", "save_every", "stop_after"):
            _check_int(name, getattr(self, name), 0 if name == "warmup_steps" else 1, optional=True)
        checks = (
            ("lr", _number(self.lr) and self.lr > 0, "> 0"),
            ("mlm_probability", _number(self.mlm_probability) and 0 < self.mlm_probability < 1, "in (0, 1)"),
            ("eval_fraction", _number(self.eval_fraction) and 0 < self.eval_fraction < 1, "in (0, 1)"),
            ("weight_decay", _number(self.weight_decay) and self.weight_decay >= 0, ">= 0"),
        )
        for name, ok, interval in checks:
            if not ok:
                raise ValueError(Errors.LF164.format(name=name, value=getattr(self, name), interval=interval))
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(Errors.LF165.format(value=self.precision))


@dataclass
class PretrainResult:
    """What a run did. ``history``: the held-out loss by step (step 0: before any training);
    ``train_loss``: the mean training loss of each step; ``finished``: ``max_steps`` reached."""

    output: Path
    step: int
    finished: bool
    fresh_head: bool
    history: list[dict[str, float]] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    pieces_per_second: float = 0.0

    @property
    def eval_loss_before(self) -> float:
        return self.history[0]["eval_loss"]

    @property
    def eval_loss_after(self) -> float:
        return self.history[-1]["eval_loss"]


# --- Corpus ---------------------------------------------------------------------------------------------


def read_corpus(path: str | Path) -> list[str]:
    """The documents of a JSONL (``{"text": ...}`` a line), ``.txt`` (a line each) or ``.spacy`` file."""
    path = _check_file(path)
    if path.suffix not in CORPUS_SUFFIXES:
        raise ValueError(Errors.LF166.format(path=path, suffixes=", ".join(CORPUS_SUFFIXES)))
    if path.suffix == ".spacy":
        import spacy
        from spacy.tokens import DocBin

        return [doc.text for doc in DocBin().from_disk(path).get_docs(spacy.blank("xx").vocab)]
    if path.suffix == ".txt":
        return [line for line in path.read_text(encoding="utf8").splitlines() if line.strip()]
    texts = []
    for number, record in _read_jsonl(path):
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise ValueError(Errors.LF167.format(path=path, line=number, found=f"{record!r:.60}"))
        texts.append(record["text"])
    return texts


def pack(documents: list[list[int]], *, block: int, bos: int, eos: int) -> list[list[int]]:
    """RoBERTa's packing: the documents' pieces in one stream, ``</s>`` between documents, cut into
    blocks of ``block`` pieces, each framed as ``<s> block </s>`` (the last one may be shorter)."""
    stream: list[int] = []
    for ids in documents:
        if stream:
            stream.append(eos)
        stream.extend(ids)
    return [[bos, *stream[i : i + block], eos] for i in range(0, len(stream), block)]


def mask_tokens(
    input_ids: Tensor,
    *,
    special: Tensor,
    probability: float,
    mask_id: int,
    vocab_size: int,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """RoBERTa's masking (transformers' ``DataCollatorForLanguageModeling``): (inputs, labels).

    input_ids, special: (batch, seq); ``special`` marks what is never chosen (specials, padding).
    Labels hold the original piece where one was chosen and -100 elsewhere.
    """
    chosen = torch.bernoulli(
        torch.full(input_ids.shape, probability).masked_fill(special, 0.0), generator=generator
    ).bool()
    labels = input_ids.masked_fill(~chosen, IGNORED)
    to_mask = torch.bernoulli(torch.full(input_ids.shape, 0.8), generator=generator).bool() & chosen
    to_random = torch.bernoulli(torch.full(input_ids.shape, 0.5), generator=generator).bool()
    to_random &= chosen & ~to_mask
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
    inputs = torch.where(to_mask, mask_id, torch.where(to_random, random_ids, input_ids))
    return inputs, labels


@dataclass
class Corpus:
    """Packed blocks for training and for evaluation, and how to batch them."""

    train: list[list[int]]
    eval: list[list[int]]
    fingerprint: str  # of the pieces and the split, so a resumed run reads the same data

    @classmethod
    def build(
        cls,
        texts: list[str],
        tokenizer: LongformerTokenizer,
        *,
        max_length: int,
        eval_fraction: float,
        seed: int,
    ) -> Corpus:
        texts = [text for text in texts if text.strip()]
        if len(texts) < 2:
            raise ValueError(Errors.LF168.format(n_docs=len(texts)))
        order = np.random.default_rng(seed).permutation(len(texts))
        n_eval = min(len(texts) - 1, max(1, math.ceil(eval_fraction * len(texts))))
        pieces = [encoding.ids for encoding in tokenizer.encode_batch(texts, add_special_tokens=False)]

        def blocks(indices: np.ndarray) -> list[list[int]]:
            docs = [pieces[i] for i in sorted(indices)]
            bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
            return pack(docs, block=max_length - 2, bos=bos, eos=eos)

        train, held_out = blocks(order[n_eval:]), blocks(order[:n_eval])
        digest = sha256(json.dumps([train, held_out]).encode()).hexdigest()[:16]
        return cls(train=train, eval=held_out, fingerprint=digest)

    def batch_blocks(self, step: int, batch_size: int, seed: int) -> list[list[int]]:
        """The blocks of step ``step``: positions ``[step * batch_size, (step + 1) * batch_size)``
        of an endless run of epochs, each a permutation drawn from ``(seed, epoch)``."""
        n = len(self.train)
        chosen = []
        for position in range(step * batch_size, (step + 1) * batch_size):
            epoch, index = divmod(position, n)
            chosen.append(self.train[int(_epoch_order(seed, epoch, n)[index])])
        return chosen


_ORDERS: dict[tuple[int, int, int], np.ndarray] = {}


def _epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    key = (seed, epoch, n)
    if key not in _ORDERS:
        _ORDERS.clear()  # one epoch at a time is all a run needs
        _ORDERS[key] = np.random.default_rng([seed, epoch]).permutation(n)
    return _ORDERS[key]


# --- Training -------------------------------------------------------------------------------------------


@dataclass
class WarmupLinear:
    """transformers' linear schedule: 0 -> 1 over ``warmup`` steps, then 1 -> 0 at ``total``. A
    dataclass rather than a lambda, so the scheduler's state dict holds it."""

    warmup: int
    total: int

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return step / max(1, self.warmup)
        return max(0.0, (self.total - step) / max(1, self.total - self.warmup))


def pretrain(
    checkpoint: str | Path,
    corpus: str | Path,
    output: str | Path,
    *,
    settings: PretrainSettings | None = None,
    resume: bool = False,
    force: bool = False,
    device: str | torch.device = "cpu",
    progress: bool | None = None,
    say: Callable[[str], None] | None = None,
) -> PretrainResult:
    """Continue MLM pretraining of ``checkpoint`` on ``corpus``; write the result to ``output``.

    ``checkpoint``: an HF Longformer folder; its MLM head carries over (one made by
    ``convert-roberta`` from a ``RobertaForMaskedLM`` has one), a base model gets a fresh head.
    ``output`` must be new or empty (``force`` empties it), unless ``resume`` continues the run
    saved in it. ``progress``: the tqdm bar (None: only on a terminal). ``say``: one line per
    event (evaluations, saves); the command line prints them.
    """
    settings = settings or PretrainSettings()
    settings.check()
    say = say or (lambda line: None)
    output = Path(output)
    device = torch.device(device)
    state_dir = output / STATE_DIR
    if resume and not (state_dir / "state.json").is_file():
        raise ValueError(Errors.LF169.format(path=output))
    if not resume:
        _prepare_output(Path(checkpoint), output, force=force)

    config, head = read_head(checkpoint, "LongformerForMaskedLM")
    tokenizer = LongformerTokenizer.from_pretrained(checkpoint)
    max_length = settings.max_length or config.max_tokens
    if max_length > config.max_tokens:
        raise ValueError(Errors.LF170.format(value=max_length, limit=config.max_tokens, path=checkpoint))
    warmup = settings.warmup_steps if settings.warmup_steps is not None else round(0.06 * settings.max_steps)
    bf16 = settings.precision == "bf16" or (
        settings.precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()
    )
    run = {
        **{name: getattr(settings, name) for name in RUN_SETTINGS},
        "max_length": max_length,
        "warmup_steps": warmup,
        "precision": "bf16" if bf16 else "fp32",
    }
    data = Corpus.build(
        read_corpus(corpus),
        tokenizer,
        max_length=max_length,
        eval_fraction=settings.eval_fraction,
        seed=settings.seed,
    )
    run["corpus"] = data.fingerprint
    batch_size = max(1, settings.batch_pieces // max_length)
    say(
        f"{len(data.train):,} training blocks and {len(data.eval):,} held-out blocks of up to "
        f"{max_length:,} pieces; {batch_size} blocks a step"
    )

    source = state_dir if resume else Path(checkpoint)
    model = LongformerForMaskedLM.from_pretrained(
        source, config=config, gradient_checkpointing=settings.gradient_checkpointing
    ).to(device)
    fresh_head = not head
    if fresh_head and not resume:
        say(f"{checkpoint} has no masked-LM head: a fresh one is trained from step 0")
    optimizer = torch.optim.AdamW(
        _parameter_groups(model, settings.weight_decay), lr=settings.lr, betas=(0.9, 0.98), eps=1e-6
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupLinear(warmup, settings.max_steps))
    mask_rng = torch.Generator().manual_seed(settings.seed)
    torch.manual_seed(settings.seed)
    specials = torch.tensor(sorted({getattr(tokenizer, f"{role}_id") for role in SPECIAL_TOKEN_ROLES}))
    masking = dict(
        probability=settings.mlm_probability, mask_id=tokenizer.mask_token_id, vocab_size=config.vocab_size
    )
    eval_batches = _eval_batches(
        data.eval, batch_size, tokenizer.pad_token_id, specials, masking, settings.seed
    )

    step = 0
    history: list[dict[str, float]] = []
    train_loss: list[float] = []
    if resume:
        saved = json.loads((state_dir / "state.json").read_text(encoding="utf8"))
        changed = [
            f"{k}: saved {saved['run'].get(k)!r}, now {v!r}"
            for k, v in run.items()
            if saved["run"].get(k) != v
        ]
        if changed:
            raise ValueError(Errors.LF171.format(path=output, changed="; ".join(changed)))
        step, history, train_loss = saved["step"], saved["history"], saved["train_loss"]
        _load_training_state(state_dir, saved, optimizer, scheduler, mask_rng)
        say(f"Resuming at step {step:,} of {settings.max_steps:,}")
    else:
        history.append({"step": 0, "eval_loss": _evaluate(model, eval_batches, device, bf16)})
        say(f"Held-out MLM loss before pretraining: {history[0]['eval_loss']:.4f}")

    eval_every = settings.eval_every or max(1, settings.max_steps // 10)
    save_every = settings.save_every or eval_every
    last_step = settings.max_steps
    if settings.stop_after is not None:
        last_step = min(last_step, step + settings.stop_after)
    pieces_seen = 0
    started = time.perf_counter()
    bar = tqdm(
        total=settings.max_steps, initial=step, desc="pretrain", unit="step", disable=_no_bar(progress)
    )
    model.train()
    while step < last_step:
        blocks = data.batch_blocks(step, batch_size, settings.seed)
        input_ids, attention_mask = _pad(blocks, tokenizer.pad_token_id)
        special = torch.isin(input_ids, specials) | (attention_mask == 0)
        inputs, labels = mask_tokens(input_ids, special=special, generator=mask_rng, **masking)
        loss = _mlm_loss(model, inputs.to(device), attention_mask.to(device), labels.to(device), bf16)[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        step += 1
        train_loss.append(loss.item())
        pieces_seen += int(attention_mask.sum())
        speed = pieces_seen / (time.perf_counter() - started)
        bar.update(1)
        bar.set_postfix(
            loss=f"{train_loss[-1]:.3f}", pieces_s=f"{speed:,.0f}", lr=f"{scheduler.get_last_lr()[0]:.2e}"
        )
        if step % eval_every == 0 or step == settings.max_steps:
            history.append({"step": step, "eval_loss": _evaluate(model, eval_batches, device, bf16)})
            model.train()
            bar.write(f"step {step:,}: held-out MLM loss {history[-1]['eval_loss']:.4f}")
        if step % save_every == 0 or step == last_step:
            state = {"run": run, "step": step, "history": history, "train_loss": train_loss}
            _save_training_state(output, model, optimizer, scheduler, mask_rng, state)
    bar.close()

    model.eval()
    model.save_pretrained(output)
    tokenizer.save_pretrained(output)
    result = PretrainResult(
        output=output,
        step=step,
        finished=step >= settings.max_steps,
        fresh_head=fresh_head,
        history=history,
        train_loss=train_loss,
        pieces_per_second=pieces_seen / max(time.perf_counter() - started, 1e-9),
    )
    log = {**asdict(result), "output": str(output), "run": run, "settings": asdict(settings)}
    (output / LOG_FILE).write_text(json.dumps(log, indent=2) + "\n", encoding="utf8")
    return result


def _mlm_loss(
    model: LongformerForMaskedLM, inputs: Tensor, attention_mask: Tensor, labels: Tensor, bf16: bool
) -> tuple[Tensor, int]:
    """Mean cross-entropy over the chosen pieces, and their number (the head runs on them only)."""
    chosen = labels != IGNORED
    with torch.autocast(inputs.device.type, dtype=torch.bfloat16, enabled=bf16):
        hidden = model.longformer(input_ids=inputs, attention_mask=attention_mask).last_hidden_state
        logits = model.lm_head(hidden[chosen], model.longformer.embeddings.word.weight)
    n_chosen = int(chosen.sum())
    total = nn.functional.cross_entropy(logits.float(), labels[chosen], reduction="sum")
    return total / max(1, n_chosen), n_chosen


def _evaluate(model: LongformerForMaskedLM, batches: list[tuple[Tensor, ...]], device, bf16: bool) -> float:
    """Cross-entropy over every chosen piece of the held-out blocks (not a mean of batch means)."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for inputs, attention_mask, labels in batches:
            loss, n = _mlm_loss(model, inputs.to(device), attention_mask.to(device), labels.to(device), bf16)
            total += loss.item() * n
            count += n
    return total / max(1, count)


def _eval_batches(
    blocks: list[list[int]], batch_size: int, pad: int, specials: Tensor, masking: dict[str, Any], seed: int
) -> list[tuple[Tensor, Tensor, Tensor]]:
    """The held-out blocks, masked once by a generator of their own seeded with ``seed``."""
    generator = torch.Generator().manual_seed(seed + 1)
    batches = []
    for i in range(0, len(blocks), batch_size):
        input_ids, attention_mask = _pad(blocks[i : i + batch_size], pad)
        special = torch.isin(input_ids, specials) | (attention_mask == 0)
        inputs, labels = mask_tokens(input_ids, special=special, generator=generator, **masking)
        batches.append((inputs, attention_mask, labels))
    return batches


def _pad(blocks: list[list[int]], pad: int) -> tuple[Tensor, Tensor]:
    width = max(len(block) for block in blocks)
    input_ids = torch.full((len(blocks), width), pad, dtype=torch.long)
    attention_mask = torch.zeros((len(blocks), width), dtype=torch.long)
    for row, block in enumerate(blocks):
        input_ids[row, : len(block)] = torch.tensor(block)
        attention_mask[row, : len(block)] = 1
    return input_ids, attention_mask


def _parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on every weight but the biases and the norms' (transformers' and RoBERTa's rule)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if name.endswith("bias") or "norm" in name else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


# --- Saved state ----------------------------------------------------------------------------------------


def _save_training_state(
    output: Path,
    model: LongformerForMaskedLM,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    mask_rng: torch.Generator,
    state: dict[str, Any],
) -> None:
    """``OUTPUT/training-state``, written beside the old one and then swapped in, so a run killed
    while saving still has a whole state to resume from."""
    tmp = output / f"{STATE_DIR}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    optim = optimizer.state_dict()
    tensors = {
        f"{index}.{name}": value.detach().cpu().contiguous()
        for index, values in optim["state"].items()
        for name, value in values.items()
    }
    save_file(tensors, tmp / "optimizer.safetensors")
    rng = {"torch": torch.get_rng_state(), "mask": mask_rng.get_state()}
    if torch.cuda.is_available():
        rng.update({f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    save_file(rng, tmp / "rng.safetensors")
    scheduler_state = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
    # json, not srsly: srsly's ujson rounds floats, and the learning rate must come back exact.
    saved = {**state, "param_groups": optim["param_groups"], "scheduler": scheduler_state}
    (tmp / "state.json").write_text(json.dumps(saved), encoding="utf8")
    old = output / f"{STATE_DIR}.old"
    shutil.rmtree(old, ignore_errors=True)
    if (output / STATE_DIR).exists():
        (output / STATE_DIR).rename(old)
    tmp.rename(output / STATE_DIR)
    shutil.rmtree(old, ignore_errors=True)


def _load_training_state(
    state_dir: Path,
    saved: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    mask_rng: torch.Generator,
) -> None:
    # On the CPU: load_state_dict moves the moments to their parameters' device, and keeps `step` here.
    tensors = load_file(state_dir / "optimizer.safetensors")
    per_param: dict[int, dict[str, Tensor]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        per_param.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": per_param, "param_groups": saved["param_groups"]})
    scheduler.load_state_dict({**saved["scheduler"], "lr_lambdas": [None] * len(optimizer.param_groups)})
    rng = load_file(state_dir / "rng.safetensors")
    torch.set_rng_state(rng["torch"])
    mask_rng.set_state(rng["mask"])
    cuda = [rng[key] for key in sorted(rng) if key.startswith("cuda.")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def _prepare_output(checkpoint: Path, output: Path, *, force: bool) -> None:
    if output.resolve() == checkpoint.resolve():
        raise ValueError(Errors.LF172.format(path=output))
    if output.is_file():
        raise OSError(Errors.LF173.format(path=output, found="it is a file"))
    if output.exists() and any(output.iterdir()):
        if not force:
            raise OSError(Errors.LF173.format(path=output, found="it is not empty"))
        shutil.rmtree(output)
    output.mkdir(parents=True, exist_ok=True)


def _check_int(name: str, value: Any, minimum: int, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(Errors.LF118.format(name=name, minimum=minimum, value=value))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _no_bar(progress: bool | None) -> bool | None:
    """tqdm's ``disable``: None shows the bar on a terminal only."""
    return None if progress is None else not progress
