"""transformers as the test oracle: tiny random HF checkpoints and a runner that copes with windows
transformers can't mix (it needs the input padded to a multiple of every layer's window)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers

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
