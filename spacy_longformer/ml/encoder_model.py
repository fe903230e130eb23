"""The encoder as a thinc Model, ``spacy-longformer.LongformerEncoder.v1``: List[Doc] ->
List[LongformerData]; here it is built, given its checkpoint, and serialized.

Weights arrive at ``initialize`` from the checkpoint folder ``name``, or from a saved pipeline;
construction reads nothing from disk. ``planning`` plans each doc and ``running`` runs them.
"""

from pathlib import Path
from typing import Any

import srsly
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from spacy.util import registry
from thinc.api import Model, PyTorchGradScaler, PyTorchShim, get_torch_default_device

from ..errors import Errors
from ..model import LongformerConfig, LongformerModel
from ..tokenization import LongformerTokenizer
from .global_attention import GlobalAttentionGetter, configure_global_attention
from .running import EncoderModel, encoder_forward


@registry.architectures("spacy-longformer.LongformerEncoder.v1")
def build_longformer_encoder_v1(
    name: str | None,
    global_attention: GlobalAttentionGetter | None = None,
    max_window_pieces: int | None = None,
    window_overlap: int = 256,
    max_batch_pieces: int = 16384,
    mixed_precision: bool = False,
    grad_scaler_config: dict | None = None,
    attn_implementation: str = "auto",
    gradient_checkpointing: bool = False,
    question_key: str | None = None,
) -> EncoderModel:
    """A Longformer checkpoint folder as a thinc Model.

    name: the checkpoint folder (config.json, model.safetensors, tokenizer files), read at
        ``initialize``. global_attention: a getter (default: ``<s>`` of every window).
    max_window_pieces: pieces per window, ``<s>``/``</s>`` excluded (default: what the position
        table holds); longer docs run as overlapping windows, ``window_overlap`` pieces apart.
    max_batch_pieces: padded pieces per forward pass, which bounds memory whatever the mix of
        lengths. mixed_precision / grad_scaler_config: as thinc's PyTorch wrappers (CUDA autocast).
    question_key: read docs as QA docs, ``<s> question </s></s> context </s>`` with the question
        taken from ``doc.spans[question_key]`` and repeated in every window.
    """
    if not name:
        raise ValueError(Errors.LF141)
    for key, value, minimum in (
        ("window_overlap", window_overlap, 0),
        ("max_batch_pieces", max_batch_pieces, 1),
        ("max_window_pieces", max_window_pieces or 2, 2),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(Errors.LF123.format(name=key, expected=f"an int >= {minimum}", value=value))
    return Model(
        "longformer_encoder",
        encoder_forward,
        init=_init,
        dims={"nO": None},
        attrs={
            "name": name,
            "global_attention": global_attention or configure_global_attention(),
            "max_window_pieces": max_window_pieces,
            "window_overlap": window_overlap,
            "max_batch_pieces": max_batch_pieces,
            "mixed_precision": mixed_precision,
            "grad_scaler_config": dict(grad_scaler_config or {}),
            "attn_implementation": attn_implementation,
            "gradient_checkpointing": gradient_checkpointing,
            "question_key": question_key,
        },
    )


def _init(model: EncoderModel, X: Any = None, Y: Any = None) -> None:
    """Load the checkpoint named by ``name`` (weights, config and tokenizer)."""
    path = model.attrs["name"]
    try:
        torch_model = LongformerModel.from_pretrained(
            path,
            add_pooling_layer=False,
            attn_implementation=model.attrs["attn_implementation"],
            gradient_checkpointing=model.attrs["gradient_checkpointing"],
        )
        tokenizer = LongformerTokenizer.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise ValueError(Errors.LF121.format(path=str(path), error=err)) from err
    attach(model, torch_model, tokenizer)


def attach(model: EncoderModel, torch_model: LongformerModel, tokenizer: LongformerTokenizer) -> None:
    """Give the thinc Model its PyTorch encoder and tokenizer (at initialize or deserialization)."""
    torch_model.set_attn_implementation(model.attrs["attn_implementation"])
    torch_model.gradient_checkpointing = model.attrs["gradient_checkpointing"]
    shim = PyTorchShim(
        torch_model,
        mixed_precision=model.attrs["mixed_precision"],
        grad_scaler=PyTorchGradScaler(**model.attrs["grad_scaler_config"]),
        serialize_model=_torch_to_bytes,
        deserialize_model=_torch_from_bytes,
    )
    model.shims[:] = [shim]
    model.attrs["tokenizer"] = tokenizer
    model.set_dim("nO", torch_model.config.hidden_size, force=True)


def torch_model_of(model: EncoderModel) -> LongformerModel:
    if not model.shims:
        raise ValueError(Errors.LF120.format(name="<encoder>"))
    return model.shims[0]._model


def to_bytes(model: EncoderModel) -> bytes:
    """Config, weights (safetensors) and tokenizer of an initialized encoder."""
    return srsly.msgpack_dumps(
        {"torch": _torch_to_bytes(torch_model_of(model)), "tokenizer": model.attrs["tokenizer"].to_bytes()}
    )


def from_bytes(model: EncoderModel, data: bytes) -> None:
    msg = srsly.msgpack_loads(data)
    torch_model = _torch_from_bytes(None, msg["torch"], get_torch_default_device())
    attach(model, torch_model, LongformerTokenizer.from_bytes(msg["tokenizer"]))


def to_disk(model: EncoderModel, path: Path) -> None:
    """An HF checkpoint folder: config.json, model.safetensors and the tokenizer files."""
    torch_model_of(model).save_pretrained(path)
    model.attrs["tokenizer"].save_pretrained(path)


def from_disk(model: EncoderModel, path: Path) -> None:
    torch_model = LongformerModel.from_pretrained(path, add_pooling_layer=False)
    attach(model, torch_model.to(get_torch_default_device()), LongformerTokenizer.from_pretrained(path))


def _torch_to_bytes(torch_model: LongformerModel) -> bytes:
    state = {k: v.detach().cpu().contiguous() for k, v in torch_model.state_dict().items()}
    return srsly.msgpack_dumps({"config": torch_model.config.to_dict(), "weights": save_safetensors(state)})


def _torch_from_bytes(_: Any, data: bytes, device: torch.device) -> LongformerModel:
    msg = srsly.msgpack_loads(data)
    torch_model = LongformerModel(LongformerConfig.from_dict(msg["config"]), add_pooling_layer=False)
    torch_model.load_state_dict(load_safetensors(msg["weights"]), strict=True)
    return torch_model.to(device)
