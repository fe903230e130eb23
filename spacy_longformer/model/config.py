"""The Longformer configuration: what an HF ``config.json`` says, validated once, at the boundary."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Errors
from .linear import ACTIVATIONS

PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")


@dataclass
class LongformerConfig:
    """Hyper-parameters of a Longformer, with the names and defaults of transformers' config
    (so a config.json that leaves a key out means the same model to both).

    ``attention_window`` is normalised to one even window (>= 2) per layer; a window ``w`` lets each
    token see ``w / 2`` tokens on either side. Unlike transformers, windows need not divide each
    other. Keys we don't use (``architectures``, ``torch_dtype``, ...) are kept in ``extra`` so a
    config survives a load/save round trip.
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    attention_window: int | list[int] = 512
    pad_token_id: int = 1
    bos_token_id: int = 0
    eos_token_id: int = 2
    sep_token_id: int = 2
    id2label: dict[int, str] = field(default_factory=dict)
    problem_type: str | None = None
    tie_word_embeddings: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.attention_window = _normalise_windows(self.attention_window, self.num_hidden_layers)
        self.id2label = {int(k): str(v) for k, v in self.id2label.items()}
        if not self.id2label:
            self.id2label = {0: "LABEL_0", 1: "LABEL_1"}
        self.validate()

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in self.id2label.items()}

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def max_tokens(self) -> int:
        """The longest input the position table holds (positions start after ``pad_token_id``)."""
        return self.max_position_embeddings - self.pad_token_id - 1

    def validate(self) -> None:
        for key in (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
            "type_vocab_size",
        ):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(Errors.LF005.format(key=key, expected="a positive int", value=value))
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(Errors.LF005.format(key=key, expected="a float in [0, 1)", value=value))
        if not isinstance(self.layer_norm_eps, (int, float)) or self.layer_norm_eps <= 0:
            raise ValueError(
                Errors.LF005.format(
                    key="layer_norm_eps", expected="a positive float", value=self.layer_norm_eps
                )
            )
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                Errors.LF004.format(hidden_size=self.hidden_size, num_heads=self.num_attention_heads)
            )
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(Errors.LF006.format(value=self.hidden_act, options=", ".join(ACTIVATIONS)))
        for key in ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(Errors.LF005.format(key=key, expected="a non-negative int", value=value))
            if value >= self.vocab_size:
                raise ValueError(Errors.LF007.format(key=key, value=value, vocab_size=self.vocab_size))
        if self.max_tokens < 1:
            raise ValueError(
                Errors.LF008.format(
                    max_positions=self.max_position_embeddings,
                    pad=self.pad_token_id,
                    minimum=self.pad_token_id + 2,
                )
            )
        if self.problem_type is not None and self.problem_type not in PROBLEM_TYPES:
            raise ValueError(
                Errors.LF005.format(
                    key="problem_type", expected=f"null or one of {PROBLEM_TYPES}", value=self.problem_type
                )
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LongformerConfig:
        """Read transformers' config keys; ``num_labels`` without ``id2label`` makes generic labels."""
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        kwargs = {k: v for k, v in data.items() if k in known}
        extra = {k: v for k, v in data.items() if k not in known and k not in _DERIVED_KEYS}
        num_labels = data.get("num_labels")
        if "id2label" not in data and num_labels is not None:
            kwargs["id2label"] = {i: f"LABEL_{i}" for i in range(int(num_labels))}
        config = cls(**kwargs, extra=extra)
        if num_labels is not None and "id2label" in data and num_labels != config.num_labels:
            raise ValueError(Errors.LF009.format(n_labels=config.num_labels, num_labels=num_labels))
        return config

    @classmethod
    def from_json_file(cls, path: str | Path) -> LongformerConfig:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf8"))
        except (OSError, ValueError) as err:
            raise ValueError(Errors.LF010.format(path=path, error=err)) from err
        if not isinstance(data, dict):
            raise ValueError(Errors.LF010.format(path=path, error="not a JSON object"))
        model_type = data.get("model_type", "longformer")
        if model_type != "longformer":
            raise ValueError(Errors.LF011.format(path=path, model_type=model_type))
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """transformers' layout: what ``LongformerConfig.from_pretrained`` reads back."""
        data = asdict(self)
        extra = data.pop("extra")
        data["id2label"] = {str(k): v for k, v in self.id2label.items()}
        data["label2id"] = self.label2id
        if self.problem_type is None:
            del data["problem_type"]
        return {**extra, **data, "model_type": "longformer"}

    def to_json_file(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf8")


_DERIVED_KEYS = {"num_labels", "label2id", "model_type"}


def _normalise_windows(value: Any, n_layers: int) -> list[int]:
    if isinstance(value, bool):
        raise ValueError(Errors.LF001.format(value=value))
    if isinstance(value, int):
        windows = [value] * n_layers
    elif isinstance(value, (list, tuple)) and all(
        isinstance(w, int) and not isinstance(w, bool) for w in value
    ):
        windows = list(value)
    else:
        raise ValueError(Errors.LF001.format(value=value))
    if len(windows) != n_layers:
        raise ValueError(Errors.LF002.format(n_windows=len(windows), n_layers=n_layers))
    for layer, window in enumerate(windows):
        if window < 2 or window % 2:
            suggestion = max(2, window + (window % 2))
            raise ValueError(Errors.LF003.format(layer=layer, window=window, suggestion=suggestion))
    return windows
