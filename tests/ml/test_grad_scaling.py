"""Mixed-precision training's gradient scaling, checked on the CPU with a stand-in scaler that
multiplies and divides as thinc's does on CUDA: the gradients of a batch are the same whether it
runs as one group or several, and over several backward passes of one update."""

import numpy as np
import pytest
import spacy
import torch
from torch import nn

from spacy_longformer.ml.encoder_model import torch_model_of
from spacy_longformer.random_checkpoint import synthetic_text


class ScalerStandIn:
    """thinc's ``PyTorchGradScaler`` interface, on any device: scale, then unscale what it is given."""

    def __init__(self, factor: float = 2.0**16) -> None:
        self.factor = factor
        self.found_inf = False

    def scale(self, tensors, inplace=False):
        return [t.mul_(self.factor) if inplace else t * self.factor for t in tensors]

    def unscale(self, tensors):
        for tensor in tensors:
            tensor.div_(self.factor)
            self.found_inf |= not bool(torch.isfinite(tensor).all())
        return self.found_inf

    def update(self):
        self.found_inf = False

    def to_(self, device):
        pass


def _encoder(tiny_checkpoint, max_batch_pieces: int):
    nlp = spacy.blank("en")
    config = {"model": {"name": str(tiny_checkpoint), "max_batch_pieces": max_batch_pieces}}
    encoder = nlp.add_pipe("longformer_encoder", config=config).model
    nlp.initialize()
    # Double precision: grouping changes the padded widths, so float32 sums differ by ~1e-4
    # relative in the largest gradients; in float64 only a scaling mistake can tell them apart.
    torch_model = torch_model_of(encoder).double()
    for module in torch_model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "dropout", None), float):
            module.dropout = 0.0
    encoder.shims[0]._grad_scaler = ScalerStandIn()
    return nlp, encoder, torch_model


def _gradients(nlp, encoder, torch_model, texts, passes: int = 1) -> dict[str, torch.Tensor]:
    docs = [nlp.make_doc(text) for text in texts]
    for parameter in torch_model.parameters():
        parameter.grad = None
    for _ in range(passes):
        datas, backprop = encoder.begin_update(docs)
        rng = np.random.default_rng(0)
        backprop([rng.standard_normal(data.last_hidden_state.shape).astype("f") for data in datas])
    return {name: p.grad.clone() for name, p in torch_model.named_parameters() if p.grad is not None}


TEXTS = [synthetic_text(n, seed=i) for i, n in enumerate([150, 30, 90, 8])]


@pytest.mark.parametrize("passes", [1, 2])
def test_gradients_do_not_depend_on_how_a_batch_is_grouped(tiny_checkpoint, passes):
    """One group vs a group per window: the scaler multiplies once and divides once per pass."""
    one = _encoder(tiny_checkpoint, max_batch_pieces=1_000_000)
    many = _encoder(tiny_checkpoint, max_batch_pieces=1)
    expected = _gradients(*one, TEXTS, passes=passes)
    got = _gradients(*many, TEXTS, passes=passes)
    assert expected.keys() == got.keys() and len(got) > 10
    for name, grad in expected.items():
        torch.testing.assert_close(got[name], grad, atol=1e-6, rtol=1e-9, msg=name)


def test_two_passes_add_up(tiny_checkpoint):
    """accumulate_gradient: a second backward pass before the update adds its gradient once."""
    encoder = _encoder(tiny_checkpoint, max_batch_pieces=64)
    once = _gradients(*encoder, TEXTS, passes=1)
    twice = _gradients(*encoder, TEXTS, passes=2)
    for name, grad in once.items():
        torch.testing.assert_close(twice[name], 2 * grad, atol=1e-6, rtol=1e-9, msg=name)


def test_the_scaler_is_on_with_mixed_precision_on_cuda_only(tiny_checkpoint):
    nlp = spacy.blank("en")
    encoder = nlp.add_pipe(
        "longformer_encoder", config={"model": {"name": str(tiny_checkpoint), "mixed_precision": True}}
    ).model
    nlp.initialize()
    shim = encoder.shims[0]
    assert shim._mixed_precision
    assert shim._grad_scaler._enabled is (
        torch_model_of(encoder).embeddings.word.weight.device.type == "cuda"
    )
