"""Task models: the encoder's pieces through transformers' Longformer heads.

Each task model is ``encoder -> rows -> head``. The encoder (an embedded
``spacy-longformer.LongformerEncoder.v1`` or a listener) gives each doc's piece states; the task
picks its rows, which is all that is spaCy's here: the mean of a doc's windows' ``<s>`` states, the
first piece of each token, or every piece; the head is the torch module of ``model.heads``, the one
``LongformerFor*`` use (``head_layer``), so a fine-tuned HF head loads into it and the components
inherit its parity with transformers. Softmax, losses and decoding live in the pipes.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d
from torch import Tensor

from ..errors import Errors
from . import head_layer
from .alignment import piece_bounds
from .encoder_model import is_loaded, name_setting
from .listener import LongformerListener
from .types import LongformerData

TextModel = Model[list[Doc], Floats2d]
TokenModel = Model[list[Doc], list[Floats2d]]
QAModel = Model[list[Doc], list[tuple[Floats2d, LongformerData]]]


@registry.architectures("spacy-longformer.TextClassifier.v1")
def build_text_classifier_v1(
    encoder: Model, dropout: float = 0.1, head_checkpoint: str | None = None
) -> TextModel:
    """transformers' sequence-classification head on each doc's ``<s>``. Outputs logits (docs x
    labels). A doc longer than one window reads the mean of its windows' ``<s>`` states.

    encoder: an embedded encoder or a listener. head_checkpoint: a fine-tuned
    ``LongformerForSequenceClassification`` folder whose head (and labels) to start from; by
    default the embedded encoder's checkpoint, when it holds such a head.
    """
    return _task_model(
        "longformer_text_classifier",
        _text_forward,
        encoder,
        head_layer.head_layer("LongformerForSequenceClassification", dropout),
        head_checkpoint=head_checkpoint,
    )


@registry.architectures("spacy-longformer.TokenClassifier.v1")
def build_token_classifier_v1(
    encoder: Model, dropout: float = 0.1, head_checkpoint: str | None = None
) -> TokenModel:
    """transformers' token-classification head on the first piece of each spaCy token. Outputs
    logits (tokens x tags) per doc. head_checkpoint: as for the text classifier, for a
    ``LongformerForTokenClassification`` folder."""
    return _task_model(
        "longformer_token_classifier",
        _token_forward,
        encoder,
        head_layer.head_layer("LongformerForTokenClassification", dropout),
        head_checkpoint=head_checkpoint,
    )


@registry.architectures("spacy-longformer.QuestionAnswering.v1")
def build_question_answering_v1(encoder: Model, head_checkpoint: str | None = None) -> QAModel:
    """transformers' QA head (start and end logits) on every piece. Outputs, per doc, the logits
    (pieces x 2) with the encoder's data (for the piece <-> token alignment). head_checkpoint: as
    for the text classifier, for a ``LongformerForQuestionAnswering`` folder."""
    model = _task_model(
        "longformer_question_answering",
        _qa_forward,
        encoder,
        head_layer.head_layer("LongformerForQuestionAnswering", 0.0),
        head_checkpoint=head_checkpoint,
    )
    model.set_dim("nO", 2)
    return model


def _task_model(
    name: str, forward: Callable, encoder: Model, head: Model, *, head_checkpoint: str | None
) -> Model:
    encoder = _piece_encoder(encoder)
    return Model(
        name,
        forward,
        init=_init,
        layers=[encoder, head],
        refs={"encoder": encoder, "head": head},
        dims={"nO": None},
        # config_section: where this block sits in the pipeline's config (set by its component).
        attrs={"head_checkpoint": head_checkpoint, "config_section": None},
    )


def _piece_encoder(encoder: Model) -> Model:
    """The part of ``encoder`` that yields piece states: a listener's chain, or a
    ``LongformerTok2Vec.v1``, ends in a per-token pooling that task heads don't want (they read
    ``<s>`` and first pieces), so drop it."""
    if isinstance(encoder, LongformerListener) or encoder.name == "longformer_encoder":
        return encoder
    first = encoder.layers[0] if encoder.layers else None
    if first is not None and (isinstance(first, LongformerListener) or first.name == "longformer_encoder"):
        return first
    raise ValueError(Errors.LF131.format(name=encoder.name))


def is_embedded(model: Model) -> bool:
    """Whether a task model carries its own encoder (else it listens to a shared one)."""
    return model.get_ref("encoder").name == "longformer_encoder"


def _init(model: Model, X: Any = None, Y: Any = None) -> None:
    encoder, head = model.layers
    if is_embedded(model) and not is_loaded(encoder):
        encoder.initialize()
    hidden = encoder.get_dim("nO") if encoder.has_dim("nO") else None
    if not hidden:
        raise ValueError(Errors.LF132.format(name=model.name))
    head.set_dim("nI", hidden, force=True)
    head.set_dim("nO", model.get_dim("nO"), force=True)
    head.initialize()


def head_is_initialized(model: Model) -> bool:
    """Whether the head has weights, after which its labels are fixed."""
    return head_layer.is_initialized(model.get_ref("head"))


def head_checkpoint_path(model: Model) -> Path | None:
    """Where the head may come from: ``head_checkpoint``, else the embedded encoder's checkpoint."""
    path = model.attrs["head_checkpoint"] or (
        model.get_ref("encoder").attrs.get("name") if is_embedded(model) else None
    )
    return Path(path) if path else None


def read_hf_head(model: Model) -> tuple[list[str] | None, dict[str, Tensor]]:
    """Labels (``id2label`` order) and head weights of the checkpoint the head may start from;
    ``(None, {})`` when it holds no head of this model's kind."""
    path = head_checkpoint_path(model)
    if path is None:
        return None, {}
    if model.attrs["head_checkpoint"]:
        setting = f"[{model.attrs['config_section'] or '<the task model block>'}] head_checkpoint"
    else:
        setting = name_setting(model.get_ref("encoder"))
    return head_layer.read_hf_head(path, model.get_ref("head").attrs["architecture"], setting=setting)


def load_hf_head(model: Model, weights: dict[str, Tensor]) -> None:
    """Copy a fine-tuned HF head's weights (from ``read_hf_head``) into the initialized head."""
    head_layer.load_hf_weights(model.get_ref("head"), weights, path=head_checkpoint_path(model))


def _text_forward(model: TextModel, docs: list[Doc], is_train: bool) -> tuple[Floats2d, Callable]:
    """Each doc's ``<s>`` state, averaged over its windows when it runs as several (a document
    longer than one window is classified from all of it, not only its start)."""
    encoder, head = model.layers
    datas, backprop_encoder = encoder(docs, is_train)
    ops = model.ops
    windows = [_window_states(data) for data in datas]
    rows = ops.xp.stack([w.mean(axis=0) for w in windows]) if datas else ops.alloc2f(0, encoder.get_dim("nO"))
    logits, backprop_head = head(rows, is_train)

    def backprop(d_logits: Floats2d) -> list:
        d_rows = backprop_head(d_logits)
        d_outputs = []
        for data, states, d_row in zip(datas, windows, d_rows, strict=True):
            d_windows = ops.xp.repeat(d_row[None, :] / len(states), len(states), axis=0)
            d_outputs.append((ops.alloc2f(*data.last_hidden_state.shape), ops.asarray2f(d_windows)))
        return backprop_encoder(d_outputs)

    return logits, backprop


def _window_states(data: LongformerData) -> Floats2d:
    return data.last_hidden_state[:1] if data.window_states is None else data.window_states


def _token_forward(model: TokenModel, docs: list[Doc], is_train: bool) -> tuple[list[Floats2d], Callable]:
    encoder, head = model.layers
    datas, backprop_encoder = encoder(docs, is_train)
    ops = model.ops
    # The first piece of each token is the one whose state tags it.
    indices = [ops.asarray1i(piece_bounds(data.alignment)[0]) for data in datas]
    rows = _concat(
        ops,
        [data.last_hidden_state[index] for data, index in zip(datas, indices, strict=True)],
        width=encoder.get_dim("nO"),
    )
    logits, backprop_head = head(rows, is_train)
    splits = np.cumsum([len(index) for index in indices])[:-1]
    outputs = ops.xp.split(logits, splits) if datas else []

    def backprop(d_logits: list[Floats2d]) -> list:
        d_rows = backprop_head(_concat(ops, d_logits, width=logits.shape[1]))
        d_states = []
        for data, index, d_part in zip(datas, indices, ops.xp.split(d_rows, splits), strict=True):
            d_state = ops.alloc2f(*data.last_hidden_state.shape)
            ops.scatter_add(d_state, index, d_part)  # tokens may share a first piece
            d_states.append(d_state)
        return backprop_encoder(d_states)

    return list(outputs), backprop


def _qa_forward(
    model: QAModel, docs: list[Doc], is_train: bool
) -> tuple[list[tuple[Floats2d, LongformerData]], Callable]:
    encoder, head = model.layers
    datas, backprop_encoder = encoder(docs, is_train)
    ops = model.ops
    states = _concat(ops, [data.last_hidden_state for data in datas], width=encoder.get_dim("nO"))
    logits, backprop_head = head(states, is_train)
    splits = np.cumsum([data.n_pieces for data in datas])[:-1]
    outputs = list(zip(ops.xp.split(logits, splits), datas, strict=True)) if datas else []

    def backprop(d_logits: list[Floats2d]) -> list:
        d_states = backprop_head(_concat(ops, d_logits, width=2))
        return backprop_encoder(list(ops.xp.split(d_states, splits)))

    return outputs, backprop


def _concat(ops: Any, parts: list[Floats2d], width: int) -> Floats2d:
    if not parts:
        return ops.alloc2f(0, width)
    return ops.xp.concatenate(parts, axis=0)
