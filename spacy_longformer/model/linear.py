"""Linear layers and activations; on CPU, inference runs through oneDNN with bias and GELU fused.

Linear layers are most of an encoder's time on CPU. On the 2-core AMD EPYC we measured, oneDNN's
fused linear (the kernel ``torch.compile`` uses) beats ``F.linear`` (MKL ``addmm``, which first
copies the broadcast bias into the output) by 25% in float32 and, with the GELU fused, saves a pass
over the (seq x intermediate) activations: benchmarks/encoder.py. It has no backward, so training,
CUDA, autocast, float16 and anything else go through ``F.linear``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "gelu": nn.functional.gelu,
    "gelu_new": lambda x: nn.functional.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: nn.functional.gelu(x, approximate="tanh"),
    "gelu_fast": lambda x: nn.functional.gelu(x, approximate="tanh"),
    "gelu_python": nn.functional.gelu,
    "gelu_accurate": lambda x: nn.functional.gelu(x, approximate="tanh"),
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
    "relu": nn.functional.relu,
    "relu2": lambda x: nn.functional.relu(x).square(),
    "relu6": nn.functional.relu6,
    "leaky_relu": nn.functional.leaky_relu,
    "silu": nn.functional.silu,
    "swish": nn.functional.silu,
    "mish": nn.functional.mish,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "linear": lambda x: x,
}

# Activations the fused kernel applies itself: name -> (oneDNN attribute, algorithm).
_FUSED = {
    "gelu": ("gelu", "none"),
    "gelu_python": ("gelu", "none"),
    "gelu_new": ("gelu", "tanh"),
    "gelu_pytorch_tanh": ("gelu", "tanh"),
    "gelu_fast": ("gelu", "tanh"),
    "gelu_accurate": ("gelu", "tanh"),
    "relu": ("relu", ""),
}
_NO_ACTIVATION = ("none", "")
# dtypes oneDNN turned down on this machine (e.g. bfloat16 without AVX-512): F.linear from then on.
_refused: set[torch.dtype] = set()


def _onednn_ok(x: Tensor, layer: nn.Linear) -> bool:
    return (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.bfloat16)
        and x.dtype not in _refused
        and layer.weight.dtype == x.dtype
        and torch.backends.mkldnn.is_available()
        and not torch.is_autocast_enabled("cpu")  # autocast picks the dtype: leave it F.linear
        and not (torch.is_grad_enabled() and (x.requires_grad or layer.weight.requires_grad))
    )


def dense(x: Tensor, layer: nn.Linear, activation: str | None = None) -> Tensor:
    """``layer(x)``, then the named activation (a key of ``ACTIVATIONS``) if given."""
    if _onednn_ok(x, layer) and (activation is None or activation in _FUSED):
        attr, algorithm = _FUSED[activation] if activation else _NO_ACTIVATION
        try:
            return torch.ops.mkldnn._linear_pointwise(x, layer.weight, layer.bias, attr, [], algorithm)
        except RuntimeError:
            _refused.add(x.dtype)
    out = nn.functional.linear(x, layer.weight, layer.bias)
    return out if activation is None else ACTIVATIONS[activation](out)
