"""transformers as the test oracle: tiny random HF checkpoints and a runner that copes with windows
transformers can't mix (it needs the input padded to a multiple of every layer's window)."""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

# Every module that imports this one needs transformers: without it (the oldest-releases run of
# .ci/run, which has no test extra) they are skipped rather than broken.
transformers = pytest.importorskip("transformers")

PARITY_CONFIGS: dict[str, dict] = {
    # windows that divide the largest: transformers runs them as they are
    "w4-8": dict(
        hidden_size=24,
        num_attention_heads=3,
        num_hidden_layers=2,
        intermediate_size=40,
        attention_window=[4, 8],
        type_vocab_size=1,
    ),
    # windows 6 and 10 (transformers needs inputs pre-padded to 30); head_dim 9; tanh gelu
    "w6-10-6": dict(
        hidden_size=36,
        num_attention_heads=4,
        num_hidden_layers=3,
        intermediate_size=50,
        attention_window=[6, 10, 6],
        hidden_act="gelu_new",
        type_vocab_size=2,
    ),
    # a larger window first, then a smaller one it doesn't divide (pre-padded to 12)
    "w6-4": dict(
        hidden_size=20,
        num_attention_heads=2,
        num_hidden_layers=2,
        intermediate_size=30,
        attention_window=[6, 4],
        layer_norm_eps=1e-5,
    ),
}

VOCAB_SIZE = 80
PAD, BOS, EOS = 1, 0, 2


def hf_config(name: str, **overrides) -> transformers.LongformerConfig:
    settings = dict(
        vocab_size=VOCAB_SIZE,
        max_position_embeddings=160,
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        pad_token_id=PAD,
        bos_token_id=BOS,
        eos_token_id=EOS,
        sep_token_id=EOS,
    )
    settings.update(PARITY_CONFIGS[name])
    settings.update(overrides)
    return transformers.LongformerConfig(**settings)


def save_small_roberta(model_class: type, folder: Path, seed: int = 0):
    """A small random RoBERTa (2 layers x 32, 64 learned positions, a byte-level BPE of 400 pieces)
    saved in ``folder`` as transformers saves one; the model is returned."""
    from spacy_longformer.random_checkpoint import synthetic_text
    from spacy_longformer.tokenization import train_byte_level_bpe

    tokenizer = train_byte_level_bpe([synthetic_text(2000, seed=3)], vocab_size=400, model_max_length=64)
    config = transformers.RobertaConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=48,
        max_position_embeddings=66,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(config)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return model


def save_hf_model(model_class: type, config: transformers.LongformerConfig, path: Path, seed: int = 0):
    """A randomly initialised transformers model, saved as a checkpoint folder; returned in eval mode."""
    torch.manual_seed(seed)
    model = model_class(config)
    # Non-trivial LayerNorm and bias values, so a swapped weight/bias cannot pass unnoticed.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "LayerNorm" in name or "layer_norm" in name or name.endswith("bias"):
                param.add_(torch.randn_like(param) * 0.1)
    model.save_pretrained(path)
    return model.eval()


def perturb_(model: torch.nn.Module, *, seed: int, weight_scale: float = 3.0) -> torch.nn.Module:
    """Make a freshly initialised model (ours or transformers') able to show a bug, in place.

    transformers' init (weights N(0, 0.02), zero biases, LayerNorm 1/0) hides whole paths: every
    bias is 0, attention is nearly uniform, and the residual stream swamps each sublayer, so that
    zeroing a layer's local attention output moves the tiny checkpoint's states by 0.04. Here every
    bias and LayerNorm parameter gets N(0, 0.1) added and every Linear weight is scaled by
    ``weight_scale`` (3: the same zeroing then moves them by 0.4, while bf16 autocast moves them
    by 0.003). Embeddings stay as they are. Works by module type, so it needs no names.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                for param in (module.weight, module.bias):
                    param.add_(torch.randn(param.shape, generator=gen) * 0.1)
            elif isinstance(module, torch.nn.Linear):
                module.weight.mul_(weight_scale)
                if module.bias is not None:
                    module.bias.add_(torch.randn(module.bias.shape, generator=gen) * 0.1)
    return model


def save_perturbed_checkpoint(source: Path, path: Path, *, seed: int = 0) -> Path:
    """``source`` (an encoder checkpoint folder with its tokenizer) with ``perturb_`` applied, as
    a new folder with the same tokenizer files."""
    model = transformers.LongformerModel.from_pretrained(source)
    perturb_(model, seed=seed)
    model.save_pretrained(path)
    for file in Path(source).iterdir():
        if file.name not in {"config.json", "model.safetensors"}:
            shutil.copy(file, Path(path) / file.name)
    return Path(path)


def no_dropout_(model: torch.nn.Module) -> torch.nn.Module:
    """Every dropout of a torch model (ours or transformers') off, in train mode too: ``nn.Dropout``
    modules and the float ``dropout`` attributes attention layers keep for their probabilities."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "dropout", None), float):
            module.dropout = 0.0
    return model


def common_multiple(config: transformers.LongformerConfig) -> int:
    windows = config.attention_window
    windows = windows if isinstance(windows, list) else [windows]
    return math.lcm(*windows)


def run_hf(model, config: transformers.LongformerConfig, seq_dims: int = 2, **inputs):
    """Run transformers on inputs pre-padded to a multiple of every window; slice the padding off.

    ``seq_dims``: the number of leading dims of id tensors (2: (batch, seq), 3: multiple choice)."""
    reference = inputs.get("input_ids")
    if reference is None:
        reference = inputs["inputs_embeds"][..., 0]
    seq_len = reference.shape[-1]
    multiple = common_multiple(config)
    largest = max(_windows(config))
    # transformers pads to a multiple of the largest window, enough when it is a multiple of all.
    extra = 0 if all(largest % w == 0 for w in _windows(config)) else (-seq_len) % multiple
    if extra and inputs.get("attention_mask") is None:
        inputs = {**inputs, "attention_mask": torch.ones(reference.shape, dtype=torch.long)}
    padded = {}
    for key, value in inputs.items():
        if key == "labels" and extra and value.shape == reference.shape:
            padded[key] = torch.nn.functional.pad(value, (0, extra), value=-100)
        elif not extra or not isinstance(value, torch.Tensor) or key in ("labels", "head_mask"):
            padded[key] = value
        elif key != "inputs_embeds" and value.shape != reference.shape:
            padded[key] = value  # not a per-token input (e.g. start_positions)
        elif key == "inputs_embeds":
            pad_embed = model.get_input_embeddings().weight[config.pad_token_id]
            filler = pad_embed.expand(*value.shape[:-2], extra, value.shape[-1])
            padded[key] = torch.cat([value, filler], dim=-2)
        else:
            fill = config.pad_token_id if key in ("input_ids", "position_ids") else 0
            padded[key] = torch.nn.functional.pad(value, (0, extra), value=fill)
    out = model(**padded)
    return out, extra


def _windows(config) -> list:
    windows = config.attention_window
    return windows if isinstance(windows, list) else [windows]


@dataclass
class Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    global_attention_mask: torch.Tensor | None

    @property
    def real(self) -> torch.Tensor:
        return self.attention_mask.bool()


GLOBAL_KINDS = ("omitted", "none", "first", "random", "span", "all")


def make_batch(lengths, *, global_kind: str, seed: int = 0) -> Batch:
    """Rows of the given lengths, right-padded to the longest: <s> ... </s> with random ids between."""
    gen = torch.Generator().manual_seed(seed)
    seq_len = max(lengths)
    ids = torch.full((len(lengths), seq_len), PAD, dtype=torch.long)
    mask = torch.zeros(len(lengths), seq_len, dtype=torch.long)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(3, VOCAB_SIZE, (n,), generator=gen)
        ids[row, 0] = BOS
        if n > 1:
            ids[row, n - 1] = EOS
        mask[row, :n] = 1
    if global_kind == "omitted":
        glob = None
    else:
        glob = torch.zeros_like(ids)
        if global_kind == "first":
            glob[:, 0] = 1
        elif global_kind == "random":
            glob = (torch.rand(ids.shape, generator=gen) < 0.2).long()
        elif global_kind == "span":
            for row, n in enumerate(lengths):
                start = int(torch.randint(0, n, (1,), generator=gen))
                glob[row, start : start + max(1, n // 4)] = 1
        elif global_kind == "all":
            glob = mask.clone()
        glob = glob * mask
    return Batch(ids, mask, glob)


# --- Pieces of spaCy tokens, from transformers' tokenizer offsets -------------------------------------


def token_pieces(piece_offsets, token_spans) -> list[list[int]]:
    """Each token's pieces by the alignment rule, as plain loops over ``piece_offsets`` (the
    (start, end) of each piece, specials left out, e.g. ``offset_mapping[1:-1]`` of transformers'
    tokenizer): the pieces whose [a, b) meets the token's characters (a < end and b > start); a
    token no piece meets (whitespace, which byte-level BPE gives empty offsets) takes the first
    piece ending after its start, the next one, else the last piece."""
    rows = []
    for start, end in token_spans:
        row = [i for i, (a, b) in enumerate(piece_offsets) if a < end and b > start]
        if not row:
            after = [i for i, (_, b) in enumerate(piece_offsets) if b > start]
            row = [after[0] if after else len(piece_offsets) - 1]
        rows.append(row)
    return rows


def doc_token_pieces(tokenizer, doc) -> list[list[int]]:
    """``token_pieces`` of a spaCy doc read alone, as indices into ``tokenizer(doc.text)``'s ids
    (``<s>`` is piece 0)."""
    offsets = tokenizer(doc.text, return_offsets_mapping=True)["offset_mapping"][1:-1]
    rows = token_pieces(offsets, [(t.idx, t.idx + len(t.text)) for t in doc])
    return [[i + 1 for i in row] for row in rows]


def global_pieces(rows: list[list[int]], tokens, *, cls: bool) -> list[int]:
    """The pieces global tokens make global: ``<s>`` (piece 0) when ``cls``, and for each run of
    consecutive tokens every piece from its first token's first piece to its last token's last
    piece (so a whitespace piece inside the run, which no token claims, too)."""
    chosen = sorted(set(tokens))
    pieces = {0} if cls else set()
    i = 0
    while i < len(chosen):
        j = i
        while j + 1 < len(chosen) and chosen[j + 1] == chosen[j] + 1:
            j += 1
        pieces.update(range(rows[chosen[i]][0], rows[chosen[j]][-1] + 1))
        i = j + 1
    return sorted(pieces)
