"""Let spaCy's own components (ner, textcat, spancat, tagger) train on a shared encoder.

The ``longformer_encoder`` pipe runs once per batch and hands its output to every listener; each
listener's component backpropagates into it, and the last one triggers the encoder's update (the
mechanism of spaCy's ``Tok2Vec`` and spacy-transformers). At prediction a listener reads
``doc._.longformer``, set by the encoder earlier in the pipeline.
"""

import logging
from collections.abc import Callable
from dataclasses import replace

import numpy as np
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model, chain, reduce_mean
from thinc.types import Floats2d, Ragged

from ..errors import Errors, Warnings
from .types import LongformerData

logger = logging.getLogger(__name__)


class LongformerListener(Model):
    """Receives the upstream encoder's output for a batch; its ``upstream_name`` picks the encoder
    (``*``: any). Holds the batch until its component's backward pass, then forgets it."""

    name = "longformer_listener"

    def __init__(self, upstream_name: str, grad_factor: float) -> None:
        super().__init__(
            name=self.name, forward=_listener_forward, dims={"nO": None}, attrs={"grad_factor": grad_factor}
        )
        self.upstream_name = upstream_name
        self._batch_id: int | None = None
        self._outputs: list[LongformerData] | None = None
        self._backprop: Callable | None = None
        # While the pipeline initializes, components run the listener on docs no encoder has
        # read: zeros then are expected. Later they mean the encoder is missing: said once.
        self.initializing = False
        self._warned = False

    @classmethod
    def get_batch_id(cls, docs: list[Doc]) -> int:
        return sum(sum(token.orth for token in doc) for doc in docs)

    def receive(self, batch_id: int, outputs: list[LongformerData], backprop: Callable) -> None:
        self.initializing = False
        self._batch_id = batch_id
        self._outputs = outputs
        self._backprop = backprop

    def verify_inputs(self, docs: list[Doc]) -> None:
        if self._batch_id is None or self._batch_id != self.get_batch_id(docs):
            raise ValueError(
                Errors.LF126.format(component="the listening component", upstream=self.upstream_name)
            )


def _listener_forward(
    model: LongformerListener, docs: list[Doc], is_train: bool
) -> tuple[list[LongformerData], Callable]:
    if is_train:
        model.verify_inputs(docs)
        outputs, upstream_backprop = model._outputs, model._backprop
        factor = model.attrs["grad_factor"]

        def backprop(d_outputs: list) -> list:
            model._batch_id = model._outputs = model._backprop = None
            return upstream_backprop([scale_gradient(d, factor) for d in d_outputs])

        return outputs, backprop
    outputs = []
    for doc in docs:
        data = doc._.longformer if Doc.has_extension("longformer") else None
        if data is None:
            if not model.has_dim("nO"):
                found = "no `longformer_encoder` took it"
                raise ValueError(Errors.LF143.format(upstream=model.upstream_name, found=found))
            width = model.get_dim("nO")
            if not model.initializing and not model._warned and len(doc):
                model._warned = True
                logger.warning(Warnings.LFW003.format(upstream=model.upstream_name))
            # Not run through the encoder (e.g. while a component initializes): zeros.
            lengths = np.ones(len(doc), dtype="i")
            data = LongformerData(
                input_ids=np.zeros(len(doc), dtype="int64"),
                last_hidden_state=model.ops.alloc2f(len(doc), width),
                global_attention_mask=np.zeros(len(doc), dtype="int8"),
                alignment=Ragged(np.arange(len(doc), dtype="i"), lengths),
                window_states=model.ops.alloc2f(1, width),
            )
        else:
            data = replace(
                data,
                last_hidden_state=model.ops.asarray2f(data.last_hidden_state),
                window_states=None if data.window_states is None else model.ops.asarray2f(data.window_states),
            )
        outputs.append(data)
    return outputs, lambda d_states: []


def scale_gradient(d: Floats2d | tuple, factor: float) -> Floats2d | tuple:
    """A gradient for the encoder (pieces, or pieces and window ``<s>`` states) times ``factor``."""
    return tuple(part * factor for part in d) if isinstance(d, tuple) else d * factor


def add_gradient(total: tuple, d: Floats2d | tuple) -> None:
    """Add one component's gradient into ``total`` = (pieces, window ``<s>`` states), in place."""
    for part, d_part in zip(total, d if isinstance(d, tuple) else (d,), strict=False):
        part += d_part


def pieces_to_tokens(pooling: Model[Ragged, Floats2d]) -> Model[list[LongformerData], list[Floats2d]]:
    """One vector per spaCy token from its pieces, by ``pooling`` (e.g. mean)."""
    return Model("pieces_to_tokens", _pieces_forward, layers=[pooling], init=_pieces_init, dims={"nO": None})


def _pieces_init(
    model: Model, X: list[LongformerData] | None = None, Y: list[Floats2d] | None = None
) -> None:
    if X:
        model.set_dim("nO", X[0].width, force=True)


def _pieces_forward(
    model: Model, datas: list[LongformerData], is_train: bool
) -> tuple[list[Floats2d], Callable]:
    pooling = model.layers[0]
    ops = model.ops
    tokens, callbacks = [], []
    for data in datas:
        index = ops.asarray1i(data.alignment.dataXd)
        rows = Ragged(data.last_hidden_state[index], ops.asarray1i(data.alignment.lengths))
        pooled, pool_backprop = pooling(rows, is_train)
        tokens.append(pooled)
        callbacks.append((pool_backprop, index, data.last_hidden_state.shape))

    def backprop(d_tokens: list[Floats2d]) -> list[Floats2d]:
        d_states = []
        for d_pooled, (pool_backprop, index, shape) in zip(d_tokens, callbacks, strict=True):
            d_rows = pool_backprop(d_pooled).dataXd
            d_state = ops.alloc2f(*shape)
            ops.scatter_add(d_state, index, d_rows)
            d_states.append(d_state)
        return d_states

    return tokens, backprop


@registry.architectures("spacy-longformer.LongformerListener.v1")
def build_longformer_listener_v1(
    upstream: str = "*",
    pooling: Model[Ragged, Floats2d] | None = None,
    grad_factor: float = 1.0,
) -> Model[list[Doc], list[Floats2d]]:
    """A tok2vec for spaCy components: the shared encoder's states, pooled per token.

    upstream: the encoder component's name (``*`` for any); pooling: pieces -> token (default
    mean); grad_factor: scales the gradient this component sends into the encoder.
    """
    listener = LongformerListener(upstream, grad_factor)
    return chain(listener, pieces_to_tokens(pooling or reduce_mean()))


@registry.architectures("spacy-longformer.LongformerTok2Vec.v1")
def build_longformer_tok2vec_v1(
    encoder: Model[list[Doc], list[LongformerData]], pooling: Model[Ragged, Floats2d] | None = None
) -> Model[list[Doc], list[Floats2d]]:
    """A tok2vec for spaCy components with an encoder of their own: its states, pooled per token.

    What ``replace_listeners`` puts in place of a ``LongformerListener.v1``: the encoder's block as
    ``encoder``, and the listener's ``pooling``."""
    return chain(encoder, pieces_to_tokens(pooling or reduce_mean()))
