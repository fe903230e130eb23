"""Settings for speed and training: implementation choice, low precision, gradient checkpointing."""

import pytest
import torch

from spacy_longformer.model import LongformerConfig, LongformerForTokenClassification, LongformerModel


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


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_weights_and_autocast(config, dtype):
    torch.manual_seed(0)
    model = LongformerModel(config).eval()
    ids, mask, glob = _batch(2)
    with torch.no_grad():
        full = model(ids, attention_mask=mask, global_attention_mask=glob).last_hidden_state
        with torch.autocast("cpu", dtype=dtype):
            autocast = model(ids, attention_mask=mask, global_attention_mask=glob).last_hidden_state
        half = model.to(dtype)(ids, attention_mask=mask, global_attention_mask=glob).last_hidden_state
    real = mask.bool()
    for out in (autocast, half):
        assert torch.isfinite(out).all()
        assert float((out.float() - full)[real].abs().max()) < 0.1


def test_training_step_in_bfloat16_has_finite_gradients(config):
    torch.manual_seed(0)
    model = LongformerForTokenClassification(config).train()
    ids, mask, glob = _batch(3)
    labels = torch.randint(0, 2, ids.shape).masked_fill(mask == 0, -100)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(ids, attention_mask=mask, global_attention_mask=glob, labels=labels).loss
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


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
