"""Hugging Face checkpoints: the only file that knows transformers' parameter names.

One ordered table maps each HF key pattern to ours and back; every checkpoint key is either mapped,
a known alias (skipped, with the reason below), a weight of another head (ignored, logged), or an
error. Weights we need but don't find are an error for the encoder and a fresh, logged
initialisation for a head. Safetensors (single or sharded) by default; pickle only when asked.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from ..errors import Errors, Warnings
from .config import LongformerConfig

if TYPE_CHECKING:
    from torch import nn

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
PICKLE_NAME = "pytorch_model.bin"
PICKLE_INDEX_NAME = "pytorch_model.bin.index.json"

# transformers' name for the encoder inside a head model.
HF_PREFIX = "longformer."
# Our name for the encoder inside a head model.
OUR_PREFIX = "longformer."

# (HF pattern, our pattern): {i} is a layer number, {p} a parameter name (weight or bias).
ENCODER_KEYS: list[tuple[str, str]] = [
    ("embeddings.word_embeddings.{p}", "embeddings.word.{p}"),
    ("embeddings.position_embeddings.{p}", "embeddings.position.{p}"),
    ("embeddings.token_type_embeddings.{p}", "embeddings.token_type.{p}"),
    ("embeddings.LayerNorm.{p}", "embeddings.norm.{p}"),
    ("encoder.layer.{i}.attention.self.query.{p}", "layers.{i}.attention.query.{p}"),
    ("encoder.layer.{i}.attention.self.key.{p}", "layers.{i}.attention.key.{p}"),
    ("encoder.layer.{i}.attention.self.value.{p}", "layers.{i}.attention.value.{p}"),
    ("encoder.layer.{i}.attention.self.query_global.{p}", "layers.{i}.attention.query_global.{p}"),
    ("encoder.layer.{i}.attention.self.key_global.{p}", "layers.{i}.attention.key_global.{p}"),
    ("encoder.layer.{i}.attention.self.value_global.{p}", "layers.{i}.attention.value_global.{p}"),
    ("encoder.layer.{i}.attention.output.dense.{p}", "layers.{i}.attention_output.{p}"),
    ("encoder.layer.{i}.attention.output.LayerNorm.{p}", "layers.{i}.attention_norm.{p}"),
    ("encoder.layer.{i}.intermediate.dense.{p}", "layers.{i}.ffn.intermediate.{p}"),
    ("encoder.layer.{i}.output.dense.{p}", "layers.{i}.ffn.output.{p}"),
    ("encoder.layer.{i}.output.LayerNorm.{p}", "layers.{i}.ffn_norm.{p}"),
    ("pooler.dense.{p}", "pooler.{p}"),
]

# Each architecture's head, outside the encoder.
HEAD_KEYS: dict[str, list[tuple[str, str]]] = {
    "LongformerModel": [],
    "LongformerForMaskedLM": [
        ("lm_head.dense.{p}", "lm_head.dense.{p}"),
        ("lm_head.layer_norm.{p}", "lm_head.norm.{p}"),
        ("lm_head.bias", "lm_head.bias"),
        ("lm_head.decoder.weight", "lm_head.decoder.weight"),
    ],
    "LongformerForSequenceClassification": [
        ("classifier.dense.{p}", "classifier.dense.{p}"),
        ("classifier.out_proj.{p}", "classifier.out_proj.{p}"),
    ],
    "LongformerForTokenClassification": [("classifier.{p}", "classifier.{p}")],
    "LongformerForQuestionAnswering": [("qa_outputs.{p}", "qa_outputs.{p}")],
    "LongformerForMultipleChoice": [("classifier.{p}", "classifier.{p}")],
}

# Keys that carry no weights of their own: a buffer of old transformers versions, and the LM
# decoder's bias, which transformers ties to ``lm_head.bias`` (read from there).
SKIPPED_KEYS = {
    "embeddings.position_ids": "a buffer of positions 0..n, recomputed at run time",
    "lm_head.decoder.bias": "the same tensor as lm_head.bias",
}
# With tied embeddings the LM decoder is the word embedding matrix.
TIED_DECODER = "lm_head.decoder.weight"


def _compile(pattern: str) -> re.Pattern:
    regex = re.escape(pattern).replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{p\}", r"(?P<p>weight|bias)")
    return re.compile(regex + "$")


_ENCODER_FORWARD = [(_compile(hf), ours) for hf, ours in ENCODER_KEYS]
_ENCODER_BACKWARD = [(_compile(ours), hf) for hf, ours in ENCODER_KEYS]
_HEAD_FORWARD = {arch: [(_compile(hf), ours) for hf, ours in keys] for arch, keys in HEAD_KEYS.items()}
_HEAD_BACKWARD = {arch: [(_compile(ours), hf) for hf, ours in keys] for arch, keys in HEAD_KEYS.items()}


def _translate(key: str, table: Iterable[tuple[re.Pattern, str]]) -> str | None:
    for pattern, template in table:
        match = pattern.match(key)
        if match:
            return template.format(**match.groupdict())
    return None


def to_hf_state_dict(model: nn.Module, architecture: str) -> dict[str, Tensor]:
    """Our parameters under transformers' names (tied LM decoder left out, as transformers does)."""
    encoder_prefix = "" if architecture == "LongformerModel" else OUR_PREFIX
    hf_encoder_prefix = "" if architecture == "LongformerModel" else HF_PREFIX
    state: dict[str, Tensor] = {}
    for key, tensor in model.state_dict().items():
        if encoder_prefix and key.startswith(encoder_prefix):
            hf_key = _translate(key[len(encoder_prefix) :], _ENCODER_BACKWARD)
            hf_key = None if hf_key is None else hf_encoder_prefix + hf_key
        elif not encoder_prefix:
            hf_key = _translate(key, _ENCODER_BACKWARD)
        else:
            hf_key = _translate(key, _HEAD_BACKWARD[architecture])
        if hf_key is None:
            raise KeyError(f"No transformers name for parameter {key!r} of {architecture}")
        state[hf_key] = tensor.detach().contiguous()
    return state


def from_hf_state_dict(
    checkpoint: dict[str, Tensor],
    *,
    architecture: str,
    tied_decoder: bool,
    path: Path,
) -> tuple[dict[str, Tensor], list[str]]:
    """Map a checkpoint onto our names; returns our state and the checkpoint keys ignored."""
    encoder_prefix = "" if architecture == "LongformerModel" else OUR_PREFIX
    checkpoint = dict(checkpoint)
    if "lm_head.bias" not in checkpoint and "lm_head.decoder.bias" in checkpoint:
        checkpoint["lm_head.bias"] = checkpoint.pop("lm_head.decoder.bias")
    state: dict[str, Tensor] = {}
    ignored: list[str] = []
    unknown: list[str] = []
    for key, tensor in checkpoint.items():
        body = key[len(HF_PREFIX) :] if key.startswith(HF_PREFIX) else key
        if body in SKIPPED_KEYS or (key == TIED_DECODER and tied_decoder):
            continue
        ours = _translate(body, _ENCODER_FORWARD)
        if ours is not None:
            state[encoder_prefix + ours] = tensor
            continue
        ours = _translate(key, _HEAD_FORWARD[architecture])
        if ours is not None:
            state[ours] = tensor
        elif any(_translate(key, table) for table in _HEAD_FORWARD.values()):
            ignored.append(key)
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(
            Errors.LF057.format(path=path, keys=", ".join(unknown[:8]), more=and_more(unknown, 8))
        )
    return state, ignored


def read_head(
    path: str | Path, architecture: str, *, allow_pickle: bool = False
) -> tuple[LongformerConfig, dict[str, Tensor]]:
    """A checkpoint folder's config and the weights of its ``architecture`` head, under our names
    (e.g. ``classifier.dense.weight``); no weights when the folder holds another head or none,
    as said by config.json's ``architectures`` (when it names any) and by the weights present."""
    path = Path(path)
    _check_folder(path)
    if not (path / CONFIG_NAME).exists():
        raise OSError(Errors.LF050.format(path=path, problem=f"it has no {CONFIG_NAME}"))
    config = LongformerConfig.from_json_file(path / CONFIG_NAME)
    named = config.extra.get("architectures") or []
    if named and architecture not in named:
        return config, {}
    state, _ = from_hf_state_dict(
        read_checkpoint(path, allow_pickle=allow_pickle),
        architecture=architecture,
        tied_decoder=False,
        path=path,
    )
    return config, {key: value for key, value in state.items() if not key.startswith(OUR_PREFIX)}


def and_more(keys: list[str], shown: int) -> str:
    """The tail of a list cut to ``shown`` items in a message: ' (and N more)'."""
    return f" (and {len(keys) - shown} more)" if len(keys) > shown else ""


def _check_folder(path: Path) -> None:
    if not path.exists():
        raise OSError(Errors.LF050.format(path=path, problem="the folder does not exist"))
    if not path.is_dir():
        raise OSError(Errors.LF050.format(path=path, problem="it is a file, not a folder"))


def read_checkpoint(path: Path, *, allow_pickle: bool = False) -> dict[str, Tensor]:
    """All tensors of a checkpoint folder, by transformers' names, on the CPU."""
    _check_folder(path)
    if (path / WEIGHTS_NAME).exists():
        return _read_safetensors(path / WEIGHTS_NAME)
    if (path / WEIGHTS_INDEX_NAME).exists():
        state: dict[str, Tensor] = {}
        for shard in _shards(path / WEIGHTS_INDEX_NAME):
            state.update(_read_safetensors(shard))
        return state
    pickles = [path / name for name in (PICKLE_NAME, PICKLE_INDEX_NAME) if (path / name).exists()]
    if not pickles:
        looked_for = ", ".join((WEIGHTS_NAME, WEIGHTS_INDEX_NAME, PICKLE_NAME, PICKLE_INDEX_NAME))
        raise OSError(Errors.LF051.format(path=path, looked_for=looked_for))
    if not allow_pickle:
        raise OSError(Errors.LF052.format(path=path, file=pickles[0].name))
    files = _shards(pickles[0]) if pickles[0].name == PICKLE_INDEX_NAME else [pickles[0]]
    state = {}
    for file in files:
        try:
            state.update(torch.load(file, map_location="cpu", weights_only=True))
        except Exception as err:  # torch raises many types for corrupt pickles
            raise OSError(Errors.LF053.format(file=file, error=err)) from err
    return state


def _read_safetensors(file: Path) -> dict[str, Tensor]:
    try:
        return load_file(file, device="cpu")
    except (SafetensorError, OSError) as err:
        raise OSError(Errors.LF053.format(file=file, error=err)) from err


def _shards(index: Path) -> list[Path]:
    try:
        weight_map = json.loads(index.read_text(encoding="utf8"))["weight_map"]
        names = sorted(set(weight_map.values()))
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise OSError(Errors.LF058.format(index=index, error=err)) from err
    for name in names:
        if not (index.parent / name).exists():
            raise OSError(Errors.LF054.format(index=index, shard=name))
    return [index.parent / name for name in names]


def parse_size(value: int | str) -> int:
    """Bytes from an int or a string like "200MB" / "2GiB" (transformers' ``max_shard_size``)."""
    units = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", value) if isinstance(value, str) else None
    if match is None or match.group(2).upper() not in units or float(match.group(1)) <= 0:
        raise ValueError(Errors.LF059.format(value=value))
    return int(float(match.group(1)) * units[match.group(2).upper()])


def write_checkpoint(
    path: Path, state: dict[str, Tensor], *, max_shard_size: int | str | None = None
) -> None:
    """model.safetensors, or shards plus an index when ``max_shard_size`` is given."""
    metadata = {"format": "pt"}
    if max_shard_size is None:
        save_file(state, path / WEIGHTS_NAME, metadata=metadata)
        return
    limit = parse_size(max_shard_size)
    shards: list[dict[str, Tensor]] = [{}]
    size = 0
    for key, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > limit:
            shards.append({})
            size = 0
        shards[-1][key] = tensor
        size += nbytes
    weight_map = {}
    for i, shard in enumerate(shards, start=1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, path / name, metadata=metadata)
        weight_map.update({key: name for key in shard})
    total = sum(t.numel() * t.element_size() for t in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (path / WEIGHTS_INDEX_NAME).write_text(
        json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf8"
    )


ModelT = TypeVar("ModelT", bound="HFCheckpointMixin")


class HFCheckpointMixin:
    """``from_pretrained`` / ``save_pretrained`` for our models, in transformers' folder layout."""

    hf_architecture: ClassVar[str]
    config: LongformerConfig

    @classmethod
    def from_pretrained(
        cls: type[ModelT],
        path: str | Path,
        *,
        config: LongformerConfig | None = None,
        allow_pickle: bool = False,
        dtype: torch.dtype | None = None,
        device: str | torch.device | None = None,
        **model_kwargs: Any,
    ) -> ModelT:
        """Load a checkpoint folder (config.json + weights) saved by transformers or by us.

        A head checkpoint loads into the base model (the head is ignored) and a base or other
        head's checkpoint into a head (the head starts fresh); both are logged.
        """
        path = Path(path)
        if config is None:
            _check_folder(path)
            if not (path / CONFIG_NAME).exists():
                raise OSError(Errors.LF050.format(path=path, problem=f"it has no {CONFIG_NAME}"))
            config = LongformerConfig.from_json_file(path / CONFIG_NAME)
        checkpoint = read_checkpoint(path, allow_pickle=allow_pickle)
        model = cls(config, **model_kwargs)
        state, ignored = from_hf_state_dict(
            checkpoint,
            architecture=cls.hf_architecture,
            tied_decoder=config.tie_word_embeddings,
            path=path,
        )
        model._load_mapped(state, path=path, ignored=ignored)
        return model.to(device=device, dtype=dtype or torch.float32)

    def _load_mapped(self, state: dict[str, Tensor], *, path: Path, ignored: list[str]) -> None:
        expected = self.state_dict()
        mismatched = [
            f"{key}: checkpoint {tuple(state[key].shape)}, model {tuple(tensor.shape)}"
            for key, tensor in expected.items()
            if key in state and state[key].shape != tensor.shape
        ]
        if mismatched:
            raise ValueError(
                Errors.LF055.format(path=path, details="; ".join(mismatched[:4]) + and_more(mismatched, 4))
            )
        missing = [key for key in expected if key not in state]
        fresh = [key for key in missing if self._may_start_fresh(key)]
        required = [key for key in missing if key not in fresh]
        if required:
            raise ValueError(
                Errors.LF056.format(path=path, keys=", ".join(required[:8]), more=and_more(required, 8))
            )
        unexpected = [key for key in state if key not in expected]
        # A pooler in the checkpoint of a model built without one is skipped; any other encoder
        # weight without a place (a layer past `num_hidden_layers`) means config and weights disagree.
        unused = [key for key in unexpected if not self._may_start_fresh(key)]
        if unused:
            raise ValueError(
                Errors.LF060.format(
                    path=path,
                    keys=", ".join(unused[:8]) + and_more(unused, 8),
                    n_layers=self.config.num_hidden_layers,
                )
            )
        if unexpected:
            ignored = ignored + unexpected
            state = {k: v for k, v in state.items() if k in expected}
        self.load_state_dict(state, strict=False)
        if fresh:
            logger.warning(
                Warnings.LFW002.format(head=self.hf_architecture, path=path, keys=", ".join(fresh))
            )
        if ignored:
            logger.info(
                "%s: ignored checkpoint weights of another head: %s", self.hf_architecture, ", ".join(ignored)
            )

    def _may_start_fresh(self, key: str) -> bool:
        """Head layers and the pooler may be missing from a checkpoint; encoder weights may not."""
        prefix = "" if self.hf_architecture == "LongformerModel" else OUR_PREFIX
        if prefix and not key.startswith(prefix):
            return True
        return key[len(prefix) :].startswith("pooler.")

    def save_pretrained(self, path: str | Path, *, max_shard_size: int | str | None = None) -> None:
        """Write config.json and safetensors weights that transformers and we load back."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        data = self.config.to_dict()
        data["architectures"] = [self.hf_architecture]
        (path / CONFIG_NAME).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf8")
        write_checkpoint(path, to_hf_state_dict(self, self.hf_architecture), max_shard_size=max_shard_size)
