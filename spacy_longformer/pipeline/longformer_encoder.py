"""The ``longformer_encoder`` pipe: runs the encoder, sets ``doc._.longformer`` and ``doc.tensor``,
and shares its output with listening components during training."""

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import srsly
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc
from spacy.training import Example, validate_examples
from spacy.util import ensure_path
from spacy.vocab import Vocab
from thinc.api import Config, Model, Optimizer, set_dropout_rate

from ..errors import Errors
from ..ml import encoder_model
from ..ml.listener import LongformerListener, add_gradient
from ..ml.types import LongformerData

DEFAULT_ENCODER_MODEL = """
[model]
@architectures = "spacy-longformer.LongformerEncoder.v1"
name = ""
max_window_pieces = null
window_overlap = 256
max_batch_pieces = 16384
mixed_precision = false
attn_implementation = "auto"
gradient_checkpointing = false
question_key = null

[model.global_attention]
@misc = "spacy-longformer.global_attention.v1"
cls = true
spans_key = null
sentence_starts = false
entities = false

[model.grad_scaler_config]
"""

if not Doc.has_extension("longformer"):
    Doc.set_extension("longformer", default=None)


@Language.factory(
    "longformer_encoder",
    assigns=["doc._.longformer", "doc.tensor"],
    default_config={"model": Config().from_str(DEFAULT_ENCODER_MODEL)["model"]},
)
def make_longformer_encoder(nlp: Language, name: str, model: Model) -> "LongformerEncoder":
    return LongformerEncoder(nlp.vocab, model, name=name)


class LongformerEncoder(TrainablePipe):
    """A Longformer checkpoint as a pipeline component; ``listeners`` train on its output."""

    def __init__(self, vocab: Vocab, model: Model, name: str = "longformer_encoder") -> None:
        self.vocab = vocab
        self.model = model
        self.name = name
        self.listener_map: dict[str, list[LongformerListener]] = {}
        self.cfg: dict[str, Any] = {}
        model.attrs["config_section"] = f"components.{name}.model"

    @property
    def listeners(self) -> list[LongformerListener]:
        return [m for c in self.listening_components for m in self.listener_map[c]]

    @property
    def listening_components(self) -> list[str]:
        return list(self.listener_map.keys())

    def add_listener(self, listener: LongformerListener, component_name: str) -> None:
        self.listener_map.setdefault(component_name, [])
        if listener not in self.listener_map[component_name]:
            self.listener_map[component_name].append(listener)
        if self.model.has_dim("nO") and listener.has_dim("nO") is None:
            listener.set_dim("nO", self.model.get_dim("nO"))

    def remove_listener(self, listener: LongformerListener, component_name: str) -> bool:
        if listener in self.listener_map.get(component_name, []):
            self.listener_map[component_name].remove(listener)
            if not self.listener_map[component_name]:
                del self.listener_map[component_name]
            return True
        return False

    def find_listeners(self, component: Any) -> None:
        names = ("*", self.name)
        if isinstance(getattr(component, "model", None), Model):
            for node in component.model.walk():
                if isinstance(node, LongformerListener) and node.upstream_name in names:
                    self.add_listener(node, component.name)

    def predict(self, docs: Iterable[Doc]) -> list[LongformerData]:
        return self.model.predict(list(docs))

    def set_annotations(self, docs: Sequence[Doc], outputs: list[LongformerData]) -> None:
        for doc, data in zip(docs, outputs, strict=True):
            data = data.to_cpu()
            doc._.longformer = data
            doc.tensor = data.token_vectors()

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optimizer | None = None,
        losses: dict[str, float] | None = None,
    ) -> dict[str, float]:
        """Run the encoder once and hand its output to the listeners; the last listener's backward
        pass sends the summed gradient into the encoder and, with ``sgd``, updates it."""
        losses = {} if losses is None else losses
        validate_examples(examples, "LongformerEncoder.update")
        docs = [eg.predicted for eg in examples]
        set_dropout_rate(self.model, drop)
        outputs, backprop_encoder = self.model.begin_update(docs)
        ops = self.model.ops
        d_states = [
            (ops.alloc2f(*data.last_hidden_state.shape), ops.alloc2f(*data.window_states.shape))
            for data in outputs
        ]
        losses.setdefault(self.name, 0.0)

        def accumulate_gradient(one_d_states: list) -> list:
            for total, d in zip(d_states, one_d_states, strict=True):
                add_gradient(total, d)
                losses[self.name] += sum(
                    float((part**2).sum()) for part in (d if isinstance(d, tuple) else (d,))
                )
            return []

        def backprop(one_d_states: list) -> list:
            accumulate_gradient(one_d_states)
            d_docs = backprop_encoder(d_states)
            if sgd is not None:
                self.finish_update(sgd)
            return d_docs

        batch_id = LongformerListener.get_batch_id(docs)
        for listener in self.listeners[:-1]:
            listener.receive(batch_id, outputs, accumulate_gradient)
        if self.listeners:
            self.listeners[-1].receive(batch_id, outputs, backprop)
        return losses

    def get_loss(self, examples: Iterable[Example], scores: Any) -> None:
        return None

    def initialize(
        self, get_examples: Callable[[], Iterable[Example]], *, nlp: Language | None = None
    ) -> None:
        """Load the checkpoint (weights, config, tokenizer) named by the model's ``name``."""
        if nlp is not None:
            _check_upstreams(nlp)
        self.model.initialize()
        self._share_width()
        for listener in self.listeners:
            listener.initializing = True

    def _share_width(self) -> None:
        """Listeners learn the encoder's width when it has weights (initialize or load)."""
        for listener in self.listeners:
            listener.set_dim("nO", self.model.get_dim("nO"), force=True)

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        return srsly.msgpack_dumps({"cfg": self.cfg, "encoder": encoder_model.to_bytes(self.model)})

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "LongformerEncoder":
        msg = srsly.msgpack_loads(bytes_data)
        self.cfg = msg["cfg"]
        encoder_model.from_bytes(self.model, msg["encoder"])
        self._share_width()
        return self

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = tuple()) -> None:
        """``cfg`` plus an HF checkpoint folder ``encoder/`` (config, safetensors, tokenizer)."""
        path = ensure_path(path)
        path.mkdir(parents=True, exist_ok=True)
        srsly.write_json(path / "cfg", self.cfg)
        encoder_model.to_disk(self.model, path / "encoder")

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = tuple()) -> "LongformerEncoder":
        path = ensure_path(path)
        for part in ("cfg", "encoder"):
            if not (path / part).exists():
                raise ValueError(Errors.LF125.format(path=path, missing=part))
        self.cfg = srsly.read_json(path / "cfg")
        encoder_model.from_disk(self.model, path / "encoder")
        self._share_width()
        return self


def _check_upstreams(nlp: Language) -> None:
    """Every listener in the pipeline names an encoder it has (spaCy would fail later, on a missing
    dimension, without saying which setting is wrong)."""
    encoders = [name for name, pipe in nlp.components if isinstance(pipe, LongformerEncoder)]
    for _, pipe in nlp.components:
        model = getattr(pipe, "model", None)
        if not isinstance(model, Model):
            continue
        for node in model.walk():
            if isinstance(node, LongformerListener) and node.upstream_name not in ("*", *encoders):
                found = "the pipeline's Longformer encoders are " + ", ".join(map(repr, encoders))
                raise ValueError(Errors.LF143.format(upstream=node.upstream_name, found=found))
