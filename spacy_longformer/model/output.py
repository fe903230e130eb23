"""Typed model outputs with transformers' field names, so code written for HF reads ours unchanged.

Shapes: ``attentions[l]`` is (batch, heads, seq, x + window_l + 1), the probabilities of each query
for the x global keys in front, then its sliding window (key ``i - window_l / 2 + j`` at column
``x + j``). ``global_attentions[l]`` is (batch, heads, seq, x): column ``g`` holds the attention of
the batch item's ``g``-th global token over every key. x is the most global tokens of any batch item.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch


class _ModelOutput:
    """Index by name or by position over the fields that are set, like transformers' ModelOutput."""

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(v for v in (getattr(self, f.name) for f in fields(self)) if v is not None)

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            return getattr(self, key)
        return self.to_tuple()[key]


@dataclass
class LongformerOutput(_ModelOutput):
    """``last_hidden_state``: (batch, seq, hidden); ``pooler_output``: (batch, hidden) or None."""

    last_hidden_state: torch.Tensor
    pooler_output: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    global_attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class _LogitsOutput(_ModelOutput):
    """A head's output: ``loss`` when labels were given, ``logits``, and the encoder's per-layer
    outputs when asked for."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    global_attentions: tuple[torch.Tensor, ...] | None = None


class LongformerMaskedLMOutput(_LogitsOutput):
    """``logits``: (batch, seq, vocab)."""


class LongformerSequenceClassifierOutput(_LogitsOutput):
    """``logits``: (batch, num_labels)."""


class LongformerTokenClassifierOutput(_LogitsOutput):
    """``logits``: (batch, seq, num_labels)."""


@dataclass
class LongformerQuestionAnsweringOutput(_ModelOutput):
    """``start_logits``, ``end_logits``: (batch, seq)."""

    loss: torch.Tensor | None = None
    start_logits: torch.Tensor | None = None
    end_logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    global_attentions: tuple[torch.Tensor, ...] | None = None


class LongformerMultipleChoiceOutput(_LogitsOutput):
    """``logits``: (batch, num_choices); per-layer outputs are over the flattened (batch * choices)."""
