"""Task heads: each defined once, with transformers' layers, loss and default global attention.

A head module maps encoder states to logits. ``LongformerFor*`` put one on a ``LongformerModel``
under transformers' attribute name (so checkpoints map key for key); the spaCy components put the
very same modules on the pieces they pick (``ml.task_models``), and compute the same losses.

When ``global_attention_mask`` is omitted each head picks what its HF counterpart picks
(``DefaultGlobalAttention``): sequence classification the ``<s>`` token, QA the question (every
token before the first ``</s>``), multiple choice everything after the first ``</s></s>``; MaskedLM
and token classification none. The components' default getters say the same, from the same rule.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..errors import Errors, Warnings
from .config import LongformerConfig
from .encoder import LongformerModel
from .hf_checkpoint import HFCheckpointMixin
from .layers import init_weights
from .output import (
    LongformerMaskedLMOutput,
    LongformerMultipleChoiceOutput,
    LongformerOutput,
    LongformerQuestionAnsweringOutput,
    LongformerSequenceClassifierOutput,
    LongformerTokenClassifierOutput,
)

logger = logging.getLogger(__name__)

# The arguments of a head's forward that go to the encoder as they are.
_ENCODER_OPTIONS = (
    "attention_mask",
    "head_mask",
    "token_type_ids",
    "position_ids",
    "output_attentions",
    "output_hidden_states",
)


# --- Default global attention -------------------------------------------------------------------------


@dataclass(frozen=True)
class DefaultGlobalAttention:
    """Which pieces transformers' head makes global when it is given no ``global_attention_mask``.

    first_token: ``<s>``. first_sequence: every piece before the first ``</s>`` (``<s>`` and a
    question). after_first_pair: every piece after the first ``</s></s>`` (a choice).
    """

    first_token: bool = False
    first_sequence: bool = False
    after_first_pair: bool = False

    def mask(
        self, input_ids: Tensor | None, inputs_embeds: Tensor | None, *, sep_token_id: int, head: str
    ) -> Tensor | None:
        """(batch, seq) 0/1, or None when the rule makes nothing global (or needs ids it lacks)."""
        if not (self.first_token or self.first_sequence or self.after_first_pair):
            return None
        if input_ids is None:
            if self.first_token:
                mask = torch.zeros(inputs_embeds.shape[:2], dtype=torch.long, device=inputs_embeds.device)
                mask[:, 0] = 1
                return mask
            logger.warning(Warnings.LFW001.format(head=head))
            return None
        positions = torch.arange(input_ids.shape[-1], device=input_ids.device)
        if self.first_token:
            return (positions == 0).long().expand(input_ids.shape).contiguous()
        first = _first_sep(input_ids, sep_token_id, head)[..., None]
        return (positions < first if self.first_sequence else positions > first + 1).long()


def _first_sep(input_ids: Tensor, sep_token_id: int, head: str) -> Tensor:
    """(...,) index of each row's first ``</s>``."""
    is_sep = input_ids == sep_token_id
    has_sep = is_sep.any(dim=-1)
    if not bool(has_sep.all()):
        row = int((~has_sep).reshape(-1).nonzero()[0])
        raise ValueError(Errors.LF028.format(head=head, row=row, sep=sep_token_id))
    return is_sep.int().argmax(dim=-1)


# --- Head modules ---------------------------------------------------------------------------------------


class LongformerLMHead(nn.Module):
    """dense -> gelu -> norm -> vocabulary projection (tied to the word embeddings by default)."""

    def __init__(self, config: LongformerConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.decoder = (
            None
            if config.tie_word_embeddings
            else nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        )

    def forward(self, features: Tensor, word_embeddings: Tensor) -> Tensor:
        x = self.norm(nn.functional.gelu(self.dense(features)))
        weight = word_embeddings if self.decoder is None else self.decoder.weight
        return nn.functional.linear(x, weight, self.bias)


class LongformerClassificationHead(nn.Module):
    """dense -> tanh -> out_proj, with dropout before each projection: (n, hidden) -> (n, labels).

    transformers feeds it the ``<s>`` state; the spaCy component feeds a long document's mean of
    its windows' ``<s>`` states."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.out_proj = nn.Linear(hidden_size, num_labels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, features: Tensor) -> Tensor:
        x = torch.tanh(self.dense(self.dropout(features)))
        return self.out_proj(self.dropout(x))


class LongformerTokenClassificationHead(nn.Linear):
    """dropout -> linear, per piece: (..., hidden) -> (..., labels). A Linear itself, so its weights
    sit where transformers keeps them (``classifier.weight``)."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float) -> None:
        super().__init__(hidden_size, num_labels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, features: Tensor) -> Tensor:
        return super().forward(self.dropout(features))


class LongformerSpanHead(nn.Linear):
    """Start and end logits per piece: (..., hidden) -> (..., 2). transformers' QA head has no dropout."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__(hidden_size, 2)


# --- Losses ---------------------------------------------------------------------------------------------


def sequence_classification_loss(
    logits: Tensor, labels: Tensor, *, problem_type: str | None, weights: Tensor | None = None
) -> Tensor:
    """transformers' rule: one label regresses, integer labels classify, others are multi-label.

    Single-label targets may also be probabilities (batch, labels). ``weights`` (multi-label only,
    0 for a missing label) averages the binary cross-entropy over the labels that are known.
    """
    num_labels = logits.shape[-1]
    if problem_type is None:
        if num_labels == 1:
            problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            problem_type = "single_label_classification"
        else:
            problem_type = "multi_label_classification"
    if problem_type == "regression":
        if num_labels == 1:
            return nn.functional.mse_loss(logits.squeeze(), labels.squeeze().to(logits.dtype))
        return nn.functional.mse_loss(logits, labels.to(logits.dtype))
    if problem_type == "single_label_classification":
        if labels.is_floating_point():
            return nn.functional.cross_entropy(logits, labels.to(logits.dtype))
        return nn.functional.cross_entropy(logits.view(-1, num_labels), labels.view(-1))
    if weights is None:
        return nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
    losses = nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), reduction="none")
    return (losses * weights).sum() / weights.sum().clamp(min=1)


def token_classification_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy per labelled piece (label -100: none), averaged over the labelled ones; 0, not
    transformers' NaN, when nothing is labelled."""
    return _mean_cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignored=-100)


def span_loss(
    start_logits: Tensor, end_logits: Tensor, start_positions: Tensor, end_positions: Tensor
) -> Tensor:
    """Mean of the start and end cross-entropies; positions past the sequence are clamped onto an
    ignored index, as in transformers, so a row without an answer counts for nothing (and no row
    with one gives 0, not NaN)."""
    ignored = start_logits.shape[1]
    start = start_positions.reshape(-1).clamp(0, ignored)
    end = end_positions.reshape(-1).clamp(0, ignored)
    return (
        _mean_cross_entropy(start_logits, start, ignored=ignored)
        + _mean_cross_entropy(end_logits, end, ignored=ignored)
    ) / 2


def _mean_cross_entropy(logits: Tensor, targets: Tensor, *, ignored: int) -> Tensor:
    """``cross_entropy(..., ignore_index=ignored)``, 0 rather than NaN when every target is ignored."""
    total = nn.functional.cross_entropy(logits, targets, ignore_index=ignored, reduction="sum")
    return total / (targets != ignored).sum().clamp(min=1)


# --- Models with a head ---------------------------------------------------------------------------------


class _Head(HFCheckpointMixin, nn.Module):
    """A head on ``self.longformer``. Subclasses name the head's attribute (transformers' name),
    build it in ``build_head``, and turn the encoder's output into their output."""

    add_pooling_layer: ClassVar[bool] = False
    head_attribute: ClassVar[str]
    default_global_attention: ClassVar[DefaultGlobalAttention] = DefaultGlobalAttention()

    def __init__(self, config: LongformerConfig, **encoder_settings: Any) -> None:
        """``encoder_settings``: ``attn_implementation``, ``gradient_checkpointing`` (see LongformerModel)."""
        super().__init__()
        self.config = config
        self.longformer = LongformerModel(
            config, add_pooling_layer=self.add_pooling_layer, **encoder_settings
        )
        head = self._new_head(config)
        head.apply(partial(init_weights, std=config.initializer_range))
        setattr(self, self.head_attribute, head)

    @classmethod
    def build_head(cls, hidden_size: int, num_labels: int, dropout: float) -> nn.Module:
        """The head module alone, on states of width ``hidden_size`` (what the spaCy components
        build, once they know their labels)."""
        raise NotImplementedError

    def _new_head(self, config: LongformerConfig) -> nn.Module:
        return self.build_head(config.hidden_size, config.num_labels, config.hidden_dropout_prob)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.longformer.get_input_embeddings()

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        global_attention_mask: Tensor | None = None,
        head_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        labels: Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        return_dict: bool = True,
    ) -> Any:
        """Inputs as ``LongformerModel``'s; ``labels`` as the head's ``loss`` documents."""
        out = self._encode(input_ids, inputs_embeds, global_attention_mask, **_encoder_options(locals()))
        logits = self.logits(out)
        loss = None if labels is None else self.loss(logits, labels)
        result = self.output_class(loss, logits, out.hidden_states, out.attentions, out.global_attentions)
        return result if return_dict else result.to_tuple()

    def _encode(
        self,
        input_ids: Tensor | None,
        inputs_embeds: Tensor | None,
        global_attention_mask: Tensor | None,
        **kwargs,
    ) -> LongformerOutput:
        if global_attention_mask is None:
            global_attention_mask = self.default_global_attention.mask(
                input_ids, inputs_embeds, sep_token_id=self.config.sep_token_id, head=self.hf_architecture
            )
        return self.longformer(
            input_ids=input_ids,
            inputs_embeds=inputs_embeds,
            global_attention_mask=global_attention_mask,
            **kwargs,
        )


class LongformerForMaskedLM(_Head):
    hf_architecture = "LongformerForMaskedLM"
    head_attribute = "lm_head"
    output_class = LongformerMaskedLMOutput

    def _new_head(self, config: LongformerConfig) -> nn.Module:
        return LongformerLMHead(config)

    def logits(self, out: LongformerOutput) -> Tensor:
        return self.lm_head(out.last_hidden_state, self.longformer.embeddings.word.weight)

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """labels: (batch, seq) token ids, -100 where no loss is taken."""
        _check_labels(labels, logits.shape[:2], self.hf_architecture, logits.shape[-1])
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))


class LongformerForSequenceClassification(_Head):
    hf_architecture = "LongformerForSequenceClassification"
    head_attribute = "classifier"
    output_class = LongformerSequenceClassifierOutput
    default_global_attention = DefaultGlobalAttention(first_token=True)

    @classmethod
    def build_head(cls, hidden_size: int, num_labels: int, dropout: float) -> nn.Module:
        return LongformerClassificationHead(hidden_size, num_labels, dropout)

    def logits(self, out: LongformerOutput) -> Tensor:
        return self.classifier(out.last_hidden_state[:, 0])

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """labels: (batch,) class ids, (batch, labels) multi-label targets, or floats to regress."""
        if not labels.is_floating_point() and logits.shape[-1] > 1:
            _check_classes(labels, logits.shape[-1], self.hf_architecture)
        return sequence_classification_loss(logits, labels, problem_type=self.config.problem_type)


class LongformerForTokenClassification(_Head):
    hf_architecture = "LongformerForTokenClassification"
    head_attribute = "classifier"
    output_class = LongformerTokenClassifierOutput

    @classmethod
    def build_head(cls, hidden_size: int, num_labels: int, dropout: float) -> nn.Module:
        return LongformerTokenClassificationHead(hidden_size, num_labels, dropout)

    def logits(self, out: LongformerOutput) -> Tensor:
        return self.classifier(out.last_hidden_state)

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """labels: (batch, seq) class ids, -100 where no loss is taken."""
        _check_labels(labels, logits.shape[:2], self.hf_architecture, logits.shape[-1])
        return token_classification_loss(logits, labels)


class LongformerForQuestionAnswering(_Head):
    hf_architecture = "LongformerForQuestionAnswering"
    head_attribute = "qa_outputs"
    default_global_attention = DefaultGlobalAttention(first_sequence=True)

    @classmethod
    def build_head(cls, hidden_size: int, num_labels: int = 2, dropout: float = 0.0) -> nn.Module:
        return LongformerSpanHead(hidden_size)

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        global_attention_mask: Tensor | None = None,
        head_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        start_positions: Tensor | None = None,
        end_positions: Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        return_dict: bool = True,
    ) -> LongformerQuestionAnsweringOutput | tuple[Tensor, ...]:
        """start_positions, end_positions: (batch,) piece indices of the answer; out of range ignored."""
        out = self._encode(input_ids, inputs_embeds, global_attention_mask, **_encoder_options(locals()))
        start_logits, end_logits = (
            t.squeeze(-1).contiguous() for t in self.qa_outputs(out.last_hidden_state).split(1, -1)
        )
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = span_loss(start_logits, end_logits, start_positions, end_positions)
        result = LongformerQuestionAnsweringOutput(
            loss, start_logits, end_logits, out.hidden_states, out.attentions, out.global_attentions
        )
        return result if return_dict else result.to_tuple()


class LongformerForMultipleChoice(_Head):
    hf_architecture = "LongformerForMultipleChoice"
    head_attribute = "classifier"
    add_pooling_layer = True
    default_global_attention = DefaultGlobalAttention(after_first_pair=True)

    @classmethod
    def build_head(cls, hidden_size: int, num_labels: int, dropout: float) -> nn.Module:
        return LongformerTokenClassificationHead(hidden_size, 1, dropout)

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        global_attention_mask: Tensor | None = None,
        head_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        labels: Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        return_dict: bool = True,
    ) -> LongformerMultipleChoiceOutput | tuple[Tensor, ...]:
        """Inputs: (batch, choices, seq) (embeds: (batch, choices, seq, hidden)); labels: (batch,)."""
        for name, tensor in (
            ("input_ids", input_ids),
            ("attention_mask", attention_mask),
            ("global_attention_mask", global_attention_mask),
            ("token_type_ids", token_type_ids),
            ("position_ids", position_ids),
        ):
            if tensor is not None and tensor.dim() != 3:
                raise ValueError(Errors.LF032.format(name=name, shape=tuple(tensor.shape)))
        if inputs_embeds is not None and inputs_embeds.dim() != 4:
            raise ValueError(Errors.LF032.format(name="inputs_embeds", shape=tuple(inputs_embeds.shape)))
        num_choices = (input_ids if input_ids is not None else inputs_embeds).shape[1]

        def flat(t: Tensor | None, trailing: int = 1) -> Tensor | None:
            return None if t is None else t.reshape(-1, *t.shape[-trailing:])

        if global_attention_mask is None and input_ids is not None:
            global_attention_mask = self.default_global_attention.mask(
                input_ids, None, sep_token_id=self.config.sep_token_id, head=self.hf_architecture
            )
        out = self.longformer(
            input_ids=flat(input_ids),
            attention_mask=flat(attention_mask),
            global_attention_mask=flat(global_attention_mask),
            head_mask=head_mask,
            token_type_ids=flat(token_type_ids),
            position_ids=flat(position_ids),
            inputs_embeds=flat(inputs_embeds, 2),
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        logits = self.classifier(out.pooler_output).view(-1, num_choices)
        if labels is not None:
            _check_classes(labels, num_choices, self.hf_architecture)
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels.view(-1))
        result = LongformerMultipleChoiceOutput(
            loss, logits, out.hidden_states, out.attentions, out.global_attentions
        )
        return result if return_dict else result.to_tuple()


# The heads the spaCy components put on pieces, by transformers' architecture name.
TASK_HEADS: dict[str, type[_Head]] = {
    cls.hf_architecture: cls
    for cls in (
        LongformerForSequenceClassification,
        LongformerForTokenClassification,
        LongformerForQuestionAnswering,
    )
}


def _encoder_options(arguments: dict[str, Any]) -> dict[str, Any]:
    return {name: arguments[name] for name in _ENCODER_OPTIONS}


def _check_labels(labels: Tensor, expected: tuple[int, ...], head: str, n_classes: int) -> None:
    """Class-id labels of the right shape, each a class or -100 (no loss)."""
    if tuple(labels.shape) != tuple(expected):
        raise ValueError(Errors.LF031.format(shape=tuple(labels.shape), expected=tuple(expected), head=head))
    _check_classes(labels, n_classes, head)


def _check_classes(labels: Tensor, n_classes: int, head: str) -> None:
    bad = (labels != -100) & ((labels < 0) | (labels >= n_classes))
    if labels.numel() and bool(bad.any()):
        value = int(labels[bad][0])
        raise ValueError(Errors.LF037.format(value=value, head=head, n_classes=n_classes, last=n_classes - 1))
