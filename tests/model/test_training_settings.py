"""Settings for speed and training: implementation choice, low precision, gradient checkpointing."""

import pytest
import torch

from spacy_longformer.model import LongformerConfig, LongformerForTokenClassification, LongformerModel

from .oracle import no_dropout_, perturb_


@pytest.fixture(scope="module")
def config():
    return LongformerConfig(
        vocab_size=60,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=48,
        attention_window=[8, 4],
        max_position_embeddings=300,
    )


def _batch(seed=0):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 60, (3, 90), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 40:] = 0
    ids[1, 40:] = 1
    glob = torch.zeros_like(ids)
    glob[:, 0] = 1
    glob[2, 50:55] = 1
    return ids, mask, glob


def test_unknown_implementation_names_the_options(config):
    with pytest.raises(ValueError, match=r"LF030.*'flash'.*auto, reference, sdpa, gemm"):
        LongformerModel(config, attn_implementation="flash")
    model = LongformerModel(config)
    with pytest.raises(ValueError, match="LF030"):
        model.set_attn_implementation("fast")


def test_output_attentions_falls_back_to_reference(config):
    model = LongformerModel(config, attn_implementation="sdpa").eval()
    ids, mask, glob = _batch()
    with torch.no_grad():
        out = model(ids, attention_mask=mask, global_attention_mask=glob, output_attentions=True)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (3, 4, 90, 6 + 8 + 1)


def test_gradient_checkpointing_gives_the_same_gradients(config):
    torch.manual_seed(0)
    model = LongformerForTokenClassification(config)
    ids, mask, glob = _batch(1)
    labels = torch.randint(0, 2, ids.shape).masked_fill(mask == 0, -100)
    grads = []
    for checkpointing in (False, True):
        model.longformer.gradient_checkpointing = checkpointing
        model.train()
        torch.manual_seed(42)  # the same dropout masks in both runs
        model.zero_grad()
        model(ids, attention_mask=mask, global_attention_mask=glob, labels=labels).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-6), name


# Largest error of the last hidden state against float32 (torch 2.13, CPU), on the perturbed
# model below, whose states are O(1): autocast bf16 3.6e-3, fp16 4.2e-4; weights cast to bf16
# 3.8e-2, fp16 4.7e-3 (LayerNorms and residuals then round too). Zeroing one layer's local
# attention output moves the states by ~0.4.
AUTOCAST_TOL = {torch.bfloat16: 1.2e-2, torch.float16: 1.5e-3}
HALF_WEIGHTS_TOL = {torch.bfloat16: 1.2e-1, torch.float16: 1.5e-2}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_weights_and_autocast(config, dtype):
    torch.manual_seed(0)
    model = perturb_(LongformerModel(config), seed=0).eval()
    ids, mask, glob = _batch(2)
    with torch.no_grad():
        full = model(ids, attention_mask=mask, global_attention_mask=glob).last_hidden_state
        with torch.autocast("cpu", dtype=dtype):
            autocast = model(ids, attention_mask=mask, global_attention_mask=glob).last_hidden_state
        half = model.to(dtype)(ids, attention_mask=mask, global_attention_mask=glob).last_hidden_state
    real = mask.bool()
    for out, tol in ((autocast, AUTOCAST_TOL[dtype]), (half, HALF_WEIGHTS_TOL[dtype])):
        assert torch.isfinite(out).all()
        assert float((out.float() - full)[real].abs().max()) < tol


# Relative error (norm of the difference / norm) of each parameter's gradient under autocast
# against float32, measured on this model: at most 1.2e-2 in bf16 and 5.5e-2 in fp16 (the
# global query biases), 2.4e-3 and 3.2e-4 over all parameters at once. Key biases get no
# gradient at all in float32 (a key bias adds the same score to every key of a query), so
# their rounding noise is no error to measure.
GRAD_TOL = {torch.bfloat16: (4e-2, 8e-3), torch.float16: (1.5e-1, 1e-3)}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_training_step_under_autocast_gives_the_float32_gradients(config, dtype):
    torch.manual_seed(0)
    model = no_dropout_(perturb_(LongformerForTokenClassification(config), seed=0)).train()
    ids, mask, glob = _batch(3)
    labels = torch.randint(0, 2, ids.shape, generator=torch.Generator().manual_seed(1))
    labels = labels.masked_fill(mask == 0, -100)
    grads = []
    for enabled in (False, True):
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=dtype, enabled=enabled):
            loss = model(ids, attention_mask=mask, global_attention_mask=glob, labels=labels).loss
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    full, low = grads
    assert full.keys() == low.keys() and all(torch.isfinite(g).all() for g in low.values())
    key_biases = [n for n in full if n.endswith("key.bias")]
    assert key_biases and all(float(full[n].abs().max()) < 1e-6 for n in key_biases)
    full = {n: g for n, g in full.items() if n not in key_biases}
    assert len(full) > 30
    per_parameter, overall = GRAD_TOL[dtype]
    for name, grad in full.items():
        assert float((low[name] - grad).norm()) <= per_parameter * float(grad.norm()), name
    difference = torch.cat([(low[n] - g).flatten() for n, g in full.items()]).norm()
    assert float(difference) <= overall * float(torch.cat([g.flatten() for g in full.values()]).norm())


def test_chunked_cpu_inference_equals_one_pass(config, monkeypatch):
    """Inference runs the per-token work in slices (and oneDNN linears): same numbers as training's
    single pass through F.linear."""
    from spacy_longformer.model import layers

    torch.manual_seed(0)
    model = LongformerModel(config).eval()
    ids, mask, glob = _batch(2)
    expected = model(ids, attention_mask=mask, global_attention_mask=glob).last_hidden_state
    assert expected.requires_grad
    monkeypatch.setattr(layers, "TOKEN_CHUNK", 7)
    with torch.no_grad():
        got = model(ids, attention_mask=mask, global_attention_mask=glob).last_hidden_state
    assert float((got - expected.detach()).abs().max()) <= 1e-5
