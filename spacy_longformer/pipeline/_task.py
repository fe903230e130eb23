"""What the task components share: their default model blocks and their serialization."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import srsly
from spacy.util import ensure_path
from thinc.api import Config, Model

from ..errors import Errors
from ..ml import encoder_model, head_layer
from ..ml.task_models import is_embedded
from ..model.heads import DefaultGlobalAttention
from ..qa_docs import QUESTION_KEY
from .longformer_encoder import DEFAULT_ENCODER_MODEL


def task_model_config(
    architecture: str, head: dict[str, Any], *, default_global: DefaultGlobalAttention
) -> Config:
    """A task's default ``[model]``: its head, with an embedded encoder whose global attention is
    what the HF head picks by default (``default_global``, the rule ``LongformerFor*`` follow): ``<s>``
    of every window, and a QA doc's question, which the encoder then reads as the first of a text
    pair."""
    model = Config().from_str(DEFAULT_ENCODER_MODEL)["model"]
    question = QUESTION_KEY if default_global.first_sequence else None
    model["global_attention"]["cls"] = default_global.first_token or default_global.first_sequence
    model["global_attention"]["spans_key"] = question
    model["question_key"] = question
    return Config({"@architectures": architecture, **head, "encoder": model})


class TaskPipeMixin:
    """Save and load a task component: ``cfg``, the head's weights and, for an embedded encoder, an
    HF checkpoint folder ``encoder/``. A listener's encoder is saved by its own component."""

    model: Model
    cfg: dict[str, Any]
    name: str

    def _name_config_sections(self) -> None:
        """Tell the model where its blocks sit in the config, so errors name the real setting."""
        self.model.attrs["config_section"] = f"components.{self.name}.model"
        if is_embedded(self.model):
            self.model.get_ref("encoder").attrs["config_section"] = f"components.{self.name}.model.encoder"

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        msg = {
            "cfg": self.cfg,
            "nO": self.model.get_dim("nO"),
            "head": head_layer.to_bytes(self.model.get_ref("head")),
        }
        if is_embedded(self.model):
            msg["encoder"] = encoder_model.to_bytes(self.model.get_ref("encoder"))
        return srsly.msgpack_dumps(msg)

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> TaskPipeMixin:
        msg = srsly.msgpack_loads(bytes_data)
        self.cfg = msg["cfg"]
        self.model.set_dim("nO", msg["nO"], force=True)
        if "encoder" in msg:
            encoder_model.from_bytes(self.model.get_ref("encoder"), msg["encoder"])
        head_layer.from_bytes(self.model.get_ref("head"), msg["head"], component=self.name)
        return self

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = tuple()) -> None:
        path = ensure_path(path)
        path.mkdir(parents=True, exist_ok=True)
        srsly.write_json(path / "cfg", {**self.cfg, "nO": self.model.get_dim("nO")})
        (path / "head").write_bytes(head_layer.to_bytes(self.model.get_ref("head")))
        if is_embedded(self.model):
            encoder_model.to_disk(self.model.get_ref("encoder"), path / "encoder")

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = tuple()) -> TaskPipeMixin:
        path = ensure_path(path)
        parts = ("cfg", "head", "encoder") if is_embedded(self.model) else ("cfg", "head")
        for part in parts:
            if not (path / part).exists():
                raise ValueError(Errors.LF125.format(path=path, missing=part))
        cfg = srsly.read_json(path / "cfg")
        self.model.set_dim("nO", cfg.pop("nO"), force=True)
        self.cfg = cfg
        if is_embedded(self.model):
            encoder_model.from_disk(self.model.get_ref("encoder"), path / "encoder")
        head_layer.from_bytes(self.model.get_ref("head"), (path / "head").read_bytes(), component=self.name)
        return self
