"""LongformerModel against transformers 4.53.2: hidden states, attentions, global attentions, gradients."""

import pytest
import torch
import transformers

from spacy_longformer.model import LongformerModel

from .oracle import GLOBAL_KINDS, PARITY_CONFIGS, hf_config, make_batch, run_hf, save_hf_model

TOL = 1e-4
# Odd lengths, a one-token row, rows shorter than a window and rows spanning several windows.
LENGTHS = [[13], [1, 5], [37, 21, 9], [61, 60, 3, 33]]


@pytest.fixture(scope="module", params=list(PARITY_CONFIGS))
def pair(request, tmp_path_factory):
    """(transformers model, our model loaded from its checkpoint, HF config)."""
    path = tmp_path_factory.mktemp(request.param)
    config = hf_config(request.param)
    theirs = save_hf_model(transformers.LongformerModel, config, path)
    ours = LongformerModel.from_pretrained(path).eval()
    return theirs, ours, config


def _max_diff(a: torch.Tensor, b: torch.Tensor, rows: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b)[rows].abs().max()) if bool(rows.any()) else 0.0


@pytest.mark.parametrize("global_kind", GLOBAL_KINDS)
@pytest.mark.parametrize("lengths", LENGTHS, ids=lambda x: "len" + "-".join(map(str, x)))
def test_hidden_states_and_attentions_match(pair, lengths, global_kind):
    theirs, ours, config = pair
    batch = make_batch(lengths, global_kind=global_kind, seed=sum(lengths))
    seq_len = batch.input_ids.shape[1]
    inputs = dict(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        global_attention_mask=batch.global_attention_mask,
        output_attentions=True,
        output_hidden_states=True,
    )
    with torch.no_grad():
        expected, extra = run_hf(theirs, config, **inputs)
        got = ours(**inputs)
    real = batch.real
    assert _max_diff(got.last_hidden_state, expected.last_hidden_state[:, :seq_len], real) <= TOL
    for implementation in ("sdpa", "gemm", "auto"):
        ours.set_attn_implementation(implementation)
        with torch.no_grad():
            fast = ours(**{**inputs, "output_attentions": False})
        ours.set_attn_implementation("auto")
        assert _max_diff(fast.last_hidden_state, expected.last_hidden_state[:, :seq_len], real) <= TOL
        assert _max_diff(fast.last_hidden_state, got.last_hidden_state, real) <= 1e-5
        for mine, reference in zip(fast.hidden_states, got.hidden_states, strict=True):
            assert _max_diff(mine, reference, real) <= 1e-5
    assert torch.allclose(got.pooler_output, expected.pooler_output, atol=TOL)
    assert len(got.hidden_states) == len(expected.hidden_states) == config.num_hidden_layers + 1
    for mine, hf in zip(got.hidden_states, expected.hidden_states, strict=True):
        assert _max_diff(mine, hf[:, :seq_len], real) <= TOL
    assert len(got.attentions) == config.num_hidden_layers
    for layer, (mine, hf) in enumerate(zip(got.attentions, expected.attentions, strict=True)):
        n_global = 0 if expected.global_attentions is None else expected.global_attentions[0].shape[-1]
        window = ours.config.attention_window[layer]
        assert mine.shape == (len(lengths), config.num_attention_heads, seq_len, n_global + window + 1)
        assert float((mine - hf[:, :, :seq_len]).abs().max()) <= TOL
    if expected.global_attentions is None:
        assert got.global_attentions is None
        return
    for mine, hf in zip(got.global_attentions, expected.global_attentions, strict=True):
        hf = hf[:, :, :seq_len]
        assert mine.shape == hf.shape
        if extra:
            # Slots a row doesn't use hold filler that depends on transformers' padded length;
            # we had to pre-pad for it, so compare the slots that hold a global token.
            counts = batch.global_attention_mask.sum(1)
            used = torch.arange(hf.shape[-1])[None, :] < counts[:, None]
            mine, hf = mine.permute(0, 3, 1, 2)[used], hf.permute(0, 3, 1, 2)[used]
        assert float((mine - hf).abs().max()) <= TOL


@pytest.mark.parametrize("implementation", ["reference", "sdpa", "gemm"])
@pytest.mark.parametrize("global_kind", ["first", "random", "span", "all"])
def test_gradient_wrt_inputs_embeds_matches(pair, global_kind, implementation):
    theirs, ours, config = pair
    ours.set_attn_implementation(implementation)
    batch = make_batch([23, 17, 8], global_kind=global_kind, seed=3)
    seq_len = batch.input_ids.shape[1]
    embeds = theirs.get_input_embeddings()(batch.input_ids).detach()
    weights = torch.randn(
        *batch.input_ids.shape, config.hidden_size, generator=torch.Generator().manual_seed(1)
    )
    weights = weights * batch.attention_mask[..., None]
    grads = []
    for model, runner in ((theirs, "hf"), (ours, "ours")):
        x = embeds.clone().requires_grad_(True)
        inputs = dict(
            inputs_embeds=x,
            attention_mask=batch.attention_mask,
            global_attention_mask=batch.global_attention_mask,
        )
        out = run_hf(model, config, **inputs)[0] if runner == "hf" else model(**inputs)
        (out.last_hidden_state[:, :seq_len] * weights).sum().backward()
        grads.append(x.grad)
    ours.set_attn_implementation("auto")
    assert grads[1].abs().max() > 0
    assert _max_diff(grads[1], grads[0], batch.real) <= TOL


def test_inputs_embeds_equal_input_ids_path(pair):
    """Embeddings given directly use sequential positions, like transformers."""
    theirs, ours, config = pair
    batch = make_batch([19, 19], global_kind="first", seed=5)
    embeds = ours.get_input_embeddings()(batch.input_ids)
    with torch.no_grad():
        got = ours(inputs_embeds=embeds, global_attention_mask=batch.global_attention_mask)
        expected, _ = run_hf(
            theirs, config, inputs_embeds=embeds, global_attention_mask=batch.global_attention_mask
        )
    assert _max_diff(got.last_hidden_state, expected.last_hidden_state[:, :19], batch.real) <= TOL


def test_head_mask_matches(pair):
    theirs, ours, config = pair
    batch = make_batch([29, 12], global_kind="random", seed=7)
    head_mask = torch.ones(config.num_hidden_layers, config.num_attention_heads)
    head_mask[0, 1] = 0.0
    head_mask[-1, 0] = 0.5
    inputs = dict(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        global_attention_mask=batch.global_attention_mask,
        head_mask=head_mask,
        output_attentions=True,
    )
    with torch.no_grad():
        expected, _ = run_hf(theirs, config, **inputs)
        got = ours(**inputs)
    assert _max_diff(got.last_hidden_state, expected.last_hidden_state[:, :29], batch.real) <= TOL
    for mine, hf in zip(got.attentions, expected.attentions, strict=True):
        assert float((mine - hf[:, :, :29]).abs().max()) <= TOL


def test_padding_does_not_change_real_tokens(pair):
    """Batch invariance: a row alone and the same row padded in a batch give the same states."""
    _, ours, _ = pair
    batch = make_batch([40, 11], global_kind="span", seed=11)
    with torch.no_grad():
        together = ours(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            global_attention_mask=batch.global_attention_mask,
        ).last_hidden_state
        alone = ours(
            input_ids=batch.input_ids[1:, :11], global_attention_mask=batch.global_attention_mask[1:, :11]
        ).last_hidden_state
    assert torch.allclose(together[1, :11], alone[0], atol=1e-5)
