"""Task heads on the encoder, with transformers' losses and default global attention.

When ``global_attention_mask`` is omitted each head picks what its HF counterpart picks: sequence
classification the ``<s>`` token, QA the question (every token before the first ``</s>``), multiple
choice everything after the first ``</s></s>``; MaskedLM and token classification none.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import Errors
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

_ENCODER_ARGS = (
    "attention_mask",
    "head_mask",
    "token_type_ids",
    "position_ids",
    "inputs_embeds",
    "output_attentions",
    "output_hidden_states",
)


class _Head(HFCheckpointMixin, nn.Module):
    """A head on ``self.longformer``; subclasses build their layers, then call ``_init_head``."""

    add_pooling_layer = False

    def __init__(self, config: LongformerConfig, **encoder_settings: Any) -> None:
        """``encoder_settings``: ``attn_implementation``, ``gradient_checkpointing`` (see LongformerModel)."""
        super().__init__()
        self.config = config
        self.longformer = LongformerModel(
            config, add_pooling_layer=self.add_pooling_layer, **encoder_settings
        )

    def _init_head(self) -> None:
        for name, module in self.named_children():
            if name != "longformer":
                module.apply(partial(init_weights, std=self.config.initializer_range))

    def get_input_embeddings(self) -> nn.Embedding:
        return self.longformer.get_input_embeddings()

    def _encode(
        self, input_ids: Tensor | None, global_attention_mask: Tensor | None, **kwargs
    ) -> LongformerOutput:
        return self.longformer(input_ids=input_ids, global_attention_mask=global_attention_mask, **kwargs)


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


class LongformerForMaskedLM(_Head):
    hf_architecture = "LongformerForMaskedLM"

    def __init__(self, config: LongformerConfig, **encoder_settings: Any) -> None:
        super().__init__(config, **encoder_settings)
        self.lm_head = LongformerLMHead(config)
        self._init_head()

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
    ) -> LongformerMaskedLMOutput | tuple[Tensor, ...]:
        """labels: (batch, seq) token ids, -100 where no loss is taken."""
        out = self._encode(input_ids, global_attention_mask, **_pick(locals()))
        logits = self.lm_head(out.last_hidden_state, self.longformer.embeddings.word.weight)
        loss = None
        if labels is not None:
            _check_labels(labels, logits.shape[:2], self.hf_architecture)
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
        result = LongformerMaskedLMOutput(loss, logits, *_layer_outputs(out))
        return result if return_dict else result.to_tuple()


class LongformerClassificationHead(nn.Module):
    """dense -> tanh -> out_proj on the ``<s>`` token, with dropout before each projection."""

    def __init__(self, config: LongformerConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: Tensor) -> Tensor:
        x = torch.tanh(self.dense(self.dropout(hidden_states[:, 0])))
        return self.out_proj(self.dropout(x))


class LongformerForSequenceClassification(_Head):
    hf_architecture = "LongformerForSequenceClassification"

    def __init__(self, config: LongformerConfig, **encoder_settings: Any) -> None:
        super().__init__(config, **encoder_settings)
        self.classifier = LongformerClassificationHead(config)
        self._init_head()

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
    ) -> LongformerSequenceClassifierOutput | tuple[Tensor, ...]:
        """labels: (batch,) class ids, (batch, labels) multi-label targets, or floats to regress."""
        if global_attention_mask is None:
            global_attention_mask = _first_token_global(input_ids, inputs_embeds)
        out = self._encode(input_ids, global_attention_mask, **_pick(locals()))
        logits = self.classifier(out.last_hidden_state)
        loss = None if labels is None else self._loss(logits, labels)
        result = LongformerSequenceClassifierOutput(loss, logits, *_layer_outputs(out))
        return result if return_dict else result.to_tuple()

    def _loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """transformers' rule: one label regresses, integer labels classify, others are multi-label."""
        problem = self.config.problem_type
        if problem is None:
            if self.config.num_labels == 1:
                problem = "regression"
            elif labels.dtype in (torch.long, torch.int):
                problem = "single_label_classification"
            else:
                problem = "multi_label_classification"
        if problem == "regression":
            if self.config.num_labels == 1:
                return nn.functional.mse_loss(logits.squeeze(), labels.squeeze().to(logits.dtype))
            return nn.functional.mse_loss(logits, labels.to(logits.dtype))
        if problem == "single_label_classification":
            return nn.functional.cross_entropy(logits.view(-1, self.config.num_labels), labels.view(-1))
        return nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


class LongformerForTokenClassification(_Head):
    hf_architecture = "LongformerForTokenClassification"

    def __init__(self, config: LongformerConfig, **encoder_settings: Any) -> None:
        super().__init__(config, **encoder_settings)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self._init_head()

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
    ) -> LongformerTokenClassifierOutput | tuple[Tensor, ...]:
        """labels: (batch, seq) class ids, -100 where no loss is taken."""
        out = self._encode(input_ids, global_attention_mask, **_pick(locals()))
        logits = self.classifier(self.dropout(out.last_hidden_state))
        loss = None
        if labels is not None:
            _check_labels(labels, logits.shape[:2], self.hf_architecture)
            loss = nn.functional.cross_entropy(logits.reshape(-1, self.config.num_labels), labels.reshape(-1))
        result = LongformerTokenClassifierOutput(loss, logits, *_layer_outputs(out))
        return result if return_dict else result.to_tuple()


class LongformerForQuestionAnswering(_Head):
    hf_architecture = "LongformerForQuestionAnswering"

    def __init__(self, config: LongformerConfig, **encoder_settings: Any) -> None:
        super().__init__(config, **encoder_settings)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        self._init_head()

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
        if global_attention_mask is None:
            if input_ids is None:
                logger.warning(Errors.LF029.format(head=self.hf_architecture))
            else:
                global_attention_mask = _question_global(
                    input_ids, self.config.sep_token_id, self.hf_architecture
                )
        out = self._encode(input_ids, global_attention_mask, **_pick(locals()))
        start_logits, end_logits = (
            t.squeeze(-1).contiguous() for t in self.qa_outputs(out.last_hidden_state).split(1, -1)
        )
        loss = None
        if start_positions is not None and end_positions is not None:
            # Positions past the sequence are clamped onto an ignored index, as in transformers.
            ignored = start_logits.shape[1]
            start = start_positions.reshape(-1).clamp(0, ignored)
            end = end_positions.reshape(-1).clamp(0, ignored)
            loss = (
                nn.functional.cross_entropy(start_logits, start, ignore_index=ignored)
                + nn.functional.cross_entropy(end_logits, end, ignore_index=ignored)
            ) / 2
        result = LongformerQuestionAnsweringOutput(loss, start_logits, end_logits, *_layer_outputs(out))
        return result if return_dict else result.to_tuple()


class LongformerForMultipleChoice(_Head):
    hf_architecture = "LongformerForMultipleChoice"
    add_pooling_layer = True

    def __init__(self, config: LongformerConfig, **encoder_settings: Any) -> None:
        super().__init__(config, **encoder_settings)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self._init_head()

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
        if global_attention_mask is None and input_ids is not None:
            global_attention_mask = torch.stack(
                [
                    _after_question_global(input_ids[:, i], self.config.sep_token_id, self.hf_architecture)
                    for i in range(num_choices)
                ],
                dim=1,
            )

        def flat(t: Tensor | None, trailing: int = 1) -> Tensor | None:
            return None if t is None else t.reshape(-1, *t.shape[-trailing:])

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
        logits = self.classifier(self.dropout(out.pooler_output)).view(-1, num_choices)
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels.view(-1))
        result = LongformerMultipleChoiceOutput(loss, logits, *_layer_outputs(out))
        return result if return_dict else result.to_tuple()


def _pick(arguments: dict) -> dict:
    return {name: arguments[name] for name in _ENCODER_ARGS}


def _layer_outputs(out: LongformerOutput) -> tuple:
    return out.hidden_states, out.attentions, out.global_attentions


def _check_labels(labels: Tensor, expected: tuple[int, ...], head: str) -> None:
    if tuple(labels.shape) != tuple(expected):
        raise ValueError(Errors.LF031.format(shape=tuple(labels.shape), expected=tuple(expected), head=head))


def _first_token_global(input_ids: Tensor | None, inputs_embeds: Tensor | None) -> Tensor:
    reference = input_ids if input_ids is not None else inputs_embeds[..., 0]
    mask = torch.zeros(reference.shape, dtype=torch.long, device=reference.device)
    mask[:, 0] = 1
    return mask


def _first_sep(input_ids: Tensor, sep_token_id: int, head: str) -> Tensor:
    """(batch,) index of each row's first ``</s>``."""
    is_sep = input_ids == sep_token_id
    has_sep = is_sep.any(dim=1)
    if not bool(has_sep.all()):
        row = int((~has_sep).nonzero()[0])
        raise ValueError(Errors.LF028.format(head=head, row=row, sep=sep_token_id))
    return is_sep.int().argmax(dim=1)


def _question_global(input_ids: Tensor, sep_token_id: int, head: str) -> Tensor:
    """Global on the question: ``<s>`` and every token before the first ``</s>``."""
    first = _first_sep(input_ids, sep_token_id, head)
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None, :]
    return (positions < first[:, None]).long()


def _after_question_global(input_ids: Tensor, sep_token_id: int, head: str) -> Tensor:
    """Global on the choice: every token after the first ``</s></s>`` (transformers' rule)."""
    first = _first_sep(input_ids, sep_token_id, head)
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None, :]
    return (positions > first[:, None] + 1).long()
