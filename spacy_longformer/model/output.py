"""Typed model outputs with transformers' field names, so code written for HF reads ours unchanged.

Shapes: ``attentions[l]`` is (batch, heads, seq, x + window_l + 1), the probabilities of each query
for the x global keys in front, then its sliding window (key ``i - window_l / 2 + j`` at column
``x + j``). ``global_attentions[l]`` is (batch, heads, seq, x): column ``g`` holds the attention of
the batch item's ``g``-th global token over every key. x is the most global tokens of any batch item.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Optional, Tuple

import torch


class _ModelOutput:
    """Index by name or by position over the fields that are set, like transformers' ModelOutput."""

    def to_tuple(self) -> Tuple[Any, ...]:
        return tuple(v for v in (getattr(self, f.name) for f in fields(self)) if v is not None)

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            return getattr(self, key)
        return self.to_tuple()[key]


@dataclass
class LongformerOutput(_ModelOutput):
    """``last_hidden_state``: (batch, seq, hidden); ``pooler_output``: (batch, hidden) or None."""

    last_hidden_state: torch.Tensor
    pooler_output: Optional[torch.Tensor] = None
    hidden_states: Optional[Tuple[torch.Tensor, ...]] = None
    attentions: Optional[Tuple[torch.Tensor, ...]] = None
    global_attentions: Optional[Tuple[torch.Tensor, ...]] = None


@dataclass
class LongformerMaskedLMOutput(_ModelOutput):
    """``logits``: (batch, seq, vocab)."""

    loss: Optional[torch.Tensor] = None
    logits: Optional[torch.Tensor] = None
    hidden_states: Optional[Tuple[torch.Tensor, ...]] = None
    attentions: Optional[Tuple[torch.Tensor, ...]] = None
    global_attentions: Optional[Tuple[torch.Tensor, ...]] = None


@dataclass
class LongformerSequenceClassifierOutput(_ModelOutput):
    """``logits``: (batch, num_labels)."""

    loss: Optional[torch.Tensor] = None
    logits: Optional[torch.Tensor] = None
    hidden_states: Optional[Tuple[torch.Tensor, ...]] = None
    attentions: Optional[Tuple[torch.Tensor, ...]] = None
    global_attentions: Optional[Tuple[torch.Tensor, ...]] = None


@dataclass
class LongformerTokenClassifierOutput(_ModelOutput):
    """``logits``: (batch, seq, num_labels)."""

    loss: Optional[torch.Tensor] = None
    logits: Optional[torch.Tensor] = None
    hidden_states: Optional[Tuple[torch.Tensor, ...]] = None
    attentions: Optional[Tuple[torch.Tensor, ...]] = None
    global_attentions: Optional[Tuple[torch.Tensor, ...]] = None


@dataclass
class LongformerQuestionAnsweringOutput(_ModelOutput):
    """``start_logits``, ``end_logits``: (batch, seq)."""

    loss: Optional[torch.Tensor] = None
    start_logits: Optional[torch.Tensor] = None
    end_logits: Optional[torch.Tensor] = None
    hidden_states: Optional[Tuple[torch.Tensor, ...]] = None
    attentions: Optional[Tuple[torch.Tensor, ...]] = None
    global_attentions: Optional[Tuple[torch.Tensor, ...]] = None


@dataclass
class LongformerMultipleChoiceOutput(_ModelOutput):
    """``logits``: (batch, num_choices); per-layer outputs are over the flattened (batch * choices)."""

    loss: Optional[torch.Tensor] = None
    logits: Optional[torch.Tensor] = None
    hidden_states: Optional[Tuple[torch.Tensor, ...]] = None
    attentions: Optional[Tuple[torch.Tensor, ...]] = None
    global_attentions: Optional[Tuple[torch.Tensor, ...]] = None
