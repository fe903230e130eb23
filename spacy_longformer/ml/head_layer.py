"""A torch task head (``model.heads``) as a thinc layer, and its losses on thinc arrays.

The head module is transformers' own layers, defined once in the torch floor; here it is built at
``initialize`` (when the encoder's width and the labels are known), run through thinc's PyTorch
shim, saved as safetensors, and loaded from a fine-tuned HF checkpoint through the one key table.
"""

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import srsly
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from thinc.api import Model, PyTorchShim, get_torch_default_device, torch2xp, xp2torch
from thinc.layers.pytorchwrapper import convert_pytorch_default_inputs, convert_pytorch_default_outputs
from thinc.layers.pytorchwrapper import forward as pytorch_forward
from thinc.types import Floats2d
from torch import Tensor, nn

from .. import __version__
from ..errors import Errors
from ..model.heads import TASK_HEADS
from ..model.hf_checkpoint import read_head

HeadModel = Model[Floats2d, Floats2d]
# What a saved head says of itself; a head saved by 0.1 (a thinc layer) has no such key.
_FORMAT = "spacy_longformer_head"


def head_layer(architecture: str, dropout: float) -> HeadModel:
    """The head of ``architecture`` (a ``LongformerFor*`` name) on (rows, width) states.

    ``dropout`` is the head's dropout rate; like spaCy's own layers it follows ``set_dropout_rate``
    (the ``dropout`` of ``spacy train``)."""
    return Model(
        "longformer_head",
        _forward,
        init=_init,
        dims={"nI": None, "nO": None},
        attrs={
            "architecture": architecture,
            "dropout_rate": dropout,
            "convert_inputs": convert_pytorch_default_inputs,
            "convert_outputs": convert_pytorch_default_outputs,
        },
    )


def _init(model: HeadModel, X: Any = None, Y: Any = None) -> None:
    head_class = TASK_HEADS[model.attrs["architecture"]]
    module = head_class.build_head(model.get_dim("nI"), model.get_dim("nO"), model.attrs["dropout_rate"])
    module.apply(_glorot)
    _attach(model, module.to(get_torch_default_device()))


def _glorot(module: nn.Module) -> None:
    """A fresh head starts as thinc's and spaCy's layers do (Glorot-uniform weights, zero biases),
    not at transformers' N(0, 0.02): from a small random checkpoint that stalls on predicting the
    majority tag for hundreds of steps. A fine-tuned head's weights replace it anyway."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)


def _attach(model: HeadModel, module: nn.Module) -> None:
    model.shims[:] = [
        PyTorchShim(module, serialize_model=_module_to_bytes, deserialize_model=_module_from_bytes)
    ]


def _forward(model: HeadModel, X: Floats2d, is_train: bool) -> tuple[Floats2d, Callable]:
    if not model.shims:
        raise ValueError(Errors.LF120.format(setting="[components.<task>.model.encoder] name"))
    for layer in model.shims[0]._model.modules():
        if isinstance(layer, nn.Dropout):
            layer.p = model.attrs["dropout_rate"]
    return pytorch_forward(model, X, is_train)


def is_initialized(model: HeadModel) -> bool:
    """Whether the head has weights, after which its labels are fixed."""
    return bool(model.shims)


def load_hf_weights(model: HeadModel, weights: dict[str, Tensor], *, path: Path) -> None:
    """A fine-tuned HF head's weights (``read_hf_head``) into the initialized head."""
    module: nn.Module = model.shims[0]._model
    expected = module.state_dict()
    for key, tensor in expected.items():
        if key not in weights:
            raise ValueError(Errors.LF133.format(path=path, keys=key))
        if tuple(weights[key].shape) != tuple(tensor.shape):
            raise ValueError(
                Errors.LF134.format(module=key, shape=tuple(weights[key].shape), expected=tuple(tensor.shape))
            )
    module.load_state_dict({key: weights[key].to(tensor.dtype) for key, tensor in expected.items()})


def read_hf_head(
    path: Path, architecture: str, *, setting: str
) -> tuple[list[str] | None, dict[str, Tensor]]:
    """Labels (``id2label`` order) and head weights of a checkpoint folder, under the head module's
    own names; ``(None, {})`` when it holds no head of this kind. ``setting``: where ``path`` was
    set, for messages."""
    try:
        config, weights = read_head(path, architecture)
    except (OSError, ValueError) as err:
        raise ValueError(Errors.LF121.format(path=str(path), setting=setting, error=err)) from err
    if not weights:
        return None, {}
    prefix = TASK_HEADS[architecture].head_attribute + "."
    own = {key[len(prefix) :]: tensor for key, tensor in weights.items() if key.startswith(prefix)}
    return [config.id2label[i] for i in sorted(config.id2label)], own


def to_bytes(model: HeadModel) -> bytes:
    """The head's sizes and weights (safetensors)."""
    return srsly.msgpack_dumps(
        {
            _FORMAT: __version__,
            "nI": model.get_dim("nI"),
            "nO": model.get_dim("nO"),
            "module": _module_to_bytes(model.shims[0]._model),
        }
    )


def from_bytes(model: HeadModel, data: bytes, *, component: str) -> None:
    """Rebuild the head ``to_bytes`` wrote; a 0.1 head is an error that says what to do."""
    msg = srsly.msgpack_loads(data)
    if not isinstance(msg, dict) or _FORMAT not in msg:
        raise ValueError(Errors.LF142.format(name=component, version=__version__))
    model.set_dim("nI", msg["nI"], force=True)
    model.set_dim("nO", msg["nO"], force=True)
    model.initialize()
    module = model.shims[0]._model
    _module_from_bytes(module, msg["module"], get_torch_default_device())


def _module_to_bytes(module: nn.Module) -> bytes:
    return save_safetensors({k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()})


def _module_from_bytes(module: nn.Module, data: bytes, device: torch.device) -> nn.Module:
    module.load_state_dict(load_safetensors(data), strict=True)
    return module.to(device)


def loss_and_gradients(
    loss: Callable[..., Tensor], logits: Sequence[Floats2d], *targets: Any
) -> tuple[float, list[Floats2d]]:
    """One of the heads' torch losses (``model.heads``) on thinc arrays: ``loss(tensors, *targets)``
    with a tensor per array of ``logits`` (targets as given, or as tensors on the same device when
    they are arrays); returns the loss and its gradient for each array."""
    tensors = [xp2torch(array, requires_grad=True) for array in logits]
    device = tensors[0].device if tensors else torch.device("cpu")
    targets = tuple(
        torch.as_tensor(t, device=device) if not isinstance(t, (Tensor, type(None))) else t for t in targets
    )
    value = loss(tensors, *targets)
    value.backward()
    return float(value.detach()), [torch2xp(t.grad) for t in tensors]
