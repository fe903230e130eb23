"""``dense``: oneDNN's fused linear for CPU inference, ``F.linear`` everywhere else, same numbers."""

import pytest
import torch

from spacy_longformer.model.linear import _FUSED, ACTIVATIONS, dense


@pytest.mark.parametrize("activation", [None, *_FUSED, "silu", "quick_gelu"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_inference_equals_linear_then_activation(activation, dtype):
    torch.manual_seed(0)
    layer = torch.nn.Linear(24, 40).to(dtype)
    x = torch.randn(3, 7, 24).to(dtype)
    with torch.no_grad():
        expected = layer(x).float()
        if activation is not None:
            expected = ACTIVATIONS[activation](expected)
        got = dense(x, layer, activation)
    assert got.dtype == dtype and got.shape == (3, 7, 40)
    tolerance = 1e-5 if dtype == torch.float32 else 0.05
    assert float((got.float() - expected).abs().max()) <= tolerance


def test_training_keeps_the_autograd_path():
    """With gradients wanted, the result must carry them (oneDNN's kernel has no backward)."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(8, 6)
    x = torch.randn(5, 8, requires_grad=True)
    dense(x, layer, "gelu").sum().backward()
    expected_x = x.grad.clone()
    x.grad = None
    weight_grad = layer.weight.grad.clone()
    layer.zero_grad()
    torch.nn.functional.gelu(layer(x)).sum().backward()
    assert torch.allclose(x.grad, expected_x) and torch.allclose(layer.weight.grad, weight_grad)


def test_non_contiguous_input():
    torch.manual_seed(0)
    layer = torch.nn.Linear(16, 4)
    x = torch.randn(9, 2, 16).transpose(0, 1)
    with torch.no_grad():
        assert torch.allclose(dense(x, layer), layer(x), atol=1e-6)


def test_a_dtype_onednn_refuses_falls_back(monkeypatch):
    """A CPU whose oneDNN can't run a dtype (e.g. bfloat16 without AVX-512) gets F.linear."""
    from spacy_longformer.model import linear

    calls = []

    def refuse(*args):
        calls.append(args)
        raise RuntimeError("could not create a primitive descriptor")

    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", refuse)
    monkeypatch.setattr(linear, "_refused", set())
    layer = torch.nn.Linear(8, 6)
    x = torch.randn(5, 8)
    with torch.no_grad():
        assert torch.allclose(dense(x, layer), layer(x))
        assert torch.allclose(dense(x, layer), layer(x))
    assert len(calls) == 1 and linear._refused == {torch.float32}


def test_autocast_keeps_its_dtype():
    """Under CPU autocast the linear runs in bfloat16, as F.linear would, not in the weights' float32."""
    layer = torch.nn.Linear(8, 6)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert dense(torch.randn(5, 8), layer).dtype == torch.bfloat16
