"""The attention layer against a dense n x n oracle written from the definition, for any even
window (transformers can't run window 2, nor mix windows that don't divide each other)."""

import math

import pytest
import torch

from spacy_longformer.model import LongformerConfig
from spacy_longformer.model.attention import AttentionMask, GlobalTokens, LongformerSelfAttention

NEG = torch.finfo(torch.float32).min


def dense_oracle(layer: LongformerSelfAttention, hidden, attention_mask, global_mask):
    """Build the full (seq x seq) allowed matrix and soft-max it: slow, obvious, independent."""
    batch, seq_len, _ = hidden.shape
    heads, dim, w = layer.num_heads, layer.head_dim, layer.one_sided
    is_pad = attention_mask == 0
    is_global = (global_mask != 0) & ~is_pad

    def split(x):
        return x.view(batch, seq_len, heads, dim).transpose(1, 2)

    q = split(layer.query(hidden)) / math.sqrt(dim)
    k, v = split(layer.key(hidden)), split(layer.value(hidden))
    pos = torch.arange(seq_len)
    band = (pos[None, :] - pos[:, None]).abs() <= w
    # local: band keys that are neither padding nor global; global keys: always (if not padding)
    allowed = (band[None] & ~(is_pad | is_global)[:, None, :]) | is_global[:, None, :]
    scores = (q @ k.transpose(-1, -2)).masked_fill(~allowed[:, None], NEG)
    out = torch.softmax(scores, -1).masked_fill(is_pad[:, None, :, None], 0) @ v
    gq = split(layer.query_global(hidden)) / math.sqrt(dim)
    gk, gv = split(layer.key_global(hidden)), split(layer.value_global(hidden))
    gscores = (gq @ gk.transpose(-1, -2)).masked_fill(is_pad[:, None, None, :], NEG)
    global_out = torch.softmax(gscores, -1) @ gv
    out = torch.where(is_global[:, None, :, None], global_out, out)
    return out.transpose(1, 2).reshape(batch, seq_len, heads * dim)


def _oracle_cases():
    """(window, seq_len, global_kind, implementation), each a different computation.

    A row that fits in one window (seq_len <= window / 2 + 1) runs as plain dense attention: the
    same code for ``sdpa`` and ``gemm``, and the same case for every window that holds it. So
    lengths 1 and 2 run once (window 2), and rows that fit run on ``sdpa`` and not ``gemm``. A
    single token is ``first`` and ``all`` at once, and ``random`` over 2 tokens repeats the others.
    """
    pairs = [(2, 1), (2, 2)] + [(window, n) for window in (2, 4, 6, 10, 64) for n in (7, 40)]
    cases = []
    for window, seq_len in pairs:
        fits = seq_len <= window // 2 + 1
        for global_kind in ["none", "first", "random", "all"]:
            if (seq_len == 1 and global_kind in ("first", "random")) or (
                seq_len == 2 and global_kind == "random"
            ):
                continue
            for implementation in ["reference", "sdpa"] + ([] if fits else ["gemm"]):
                cases.append((window, seq_len, global_kind, implementation))
    return cases


@pytest.mark.parametrize("window,seq_len,global_kind,implementation", _oracle_cases())
def test_matches_dense_oracle(window, seq_len, global_kind, implementation):
    torch.manual_seed(window * 100 + seq_len)
    config = LongformerConfig(
        hidden_size=12, num_attention_heads=3, num_hidden_layers=1, attention_window=window, vocab_size=10
    )
    layer = LongformerSelfAttention(config, layer=0, attn_implementation=implementation).eval()
    hidden = torch.randn(3, seq_len, 12)
    attention_mask = torch.ones(3, seq_len, dtype=torch.long)
    attention_mask[1, seq_len // 2 + 1 :] = 0
    global_mask = {
        "none": torch.zeros(3, seq_len),
        "first": torch.nn.functional.one_hot(torch.zeros(3, dtype=torch.long), seq_len),
        "random": (torch.rand(3, seq_len) < 0.3).long(),
        "all": torch.ones(3, seq_len),
    }[global_kind].long()
    mask = AttentionMask.from_masks(attention_mask, global_mask)
    with torch.no_grad():
        got = layer(hidden, mask).context
        expected = dense_oracle(layer, hidden, attention_mask, global_mask)
    real = attention_mask.bool()
    assert float((got - expected)[real].abs().max()) <= 1e-5


@pytest.mark.parametrize("block_size", [1, 3, 16])
def test_block_size_does_not_change_results(block_size):
    """The reference walks queries in blocks; any block size gives the same numbers."""
    from spacy_longformer.model.attention import reference_local_attention

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 23, 5) for _ in range(3))
    glob = torch.zeros(2, 23, dtype=torch.bool)
    glob[0, [3, 17]] = True
    mask = AttentionMask.from_masks(torch.ones(2, 23), glob)
    base, base_probs = reference_local_attention(q, k, v, mask, one_sided=3, output_attentions=True)
    got, probs = reference_local_attention(
        q, k, v, mask, one_sided=3, output_attentions=True, block_size=block_size
    )
    assert torch.allclose(base, got, atol=1e-6)
    assert torch.allclose(base_probs, probs, atol=1e-6)


def test_global_tokens_index_in_order():
    is_global = torch.tensor([[0, 1, 0, 1, 1], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    tokens = GlobalTokens.from_mask(is_global)
    assert tokens.count == 3
    assert tokens.index.tolist() == [[1, 3, 4], [0, 0, 0], [0, 0, 0]]
    assert tokens.valid.tolist() == [[True, True, True], [False, False, False], [True, False, False]]


def test_padding_is_never_global():
    mask = AttentionMask.from_masks(torch.tensor([[1, 1, 0]]), torch.tensor([[1, 0, 1]]))
    assert mask.is_global.tolist() == [[True, False, False]]
    assert mask.global_tokens.count == 1


def test_half_precision_has_no_nan():
    """bf16 inputs with padded rows and all-global rows stay finite (masked rows are never NaN)."""
    config = LongformerConfig(
        hidden_size=16, num_attention_heads=2, num_hidden_layers=1, attention_window=4, vocab_size=10
    )
    layer = LongformerSelfAttention(config, layer=0).to(torch.bfloat16).eval()
    hidden = torch.randn(2, 9, 16, dtype=torch.bfloat16)
    attention_mask = torch.tensor([[1] * 9, [1] * 3 + [0] * 6])
    mask = AttentionMask.from_masks(attention_mask, torch.ones(2, 9))
    with torch.no_grad():
        out = layer(hidden, mask, output_attentions=True)
    assert torch.isfinite(out.context).all()
    assert torch.isfinite(out.local_probs).all() and torch.isfinite(out.global_probs).all()


@pytest.mark.parametrize("one_sided", [1, 3, 64, 200])
@pytest.mark.parametrize("with_head_mask", [False, True])
@pytest.mark.parametrize("kernel", ["sdpa", "gemm"])
def test_fast_path_equals_reference(one_sided, with_head_mask, kernel):
    """The fast paths against the reference, over padding, scattered globals and a head mask."""
    from spacy_longformer.model.attention import fast_local_attention, reference_local_attention

    torch.manual_seed(one_sided)
    q, k, v = (torch.randn(3, 4, 301, 8) for _ in range(3))
    attention_mask = torch.ones(3, 301, dtype=torch.long)
    attention_mask[1, 150:] = 0
    attention_mask[2, :] = 0  # an empty row in the batch
    glob = (torch.rand(3, 301) < 0.05).long()
    mask = AttentionMask.from_masks(attention_mask, glob)
    head_mask = torch.tensor([1.0, 0.0, 0.5, 1.0]) if with_head_mask else None
    expected, _ = reference_local_attention(q, k, v, mask, one_sided=one_sided, head_mask=head_mask)
    got = fast_local_attention(q, k, v, mask, one_sided=one_sided, head_mask=head_mask, kernel=kernel)
    assert torch.isfinite(got).all()
    assert float((got - expected).abs().max()) <= 1e-5


# Largest error against float32 measured on these inputs (torch 2.13, CPU), contexts up to 0.8:
# bf16 3.6e-3, fp16 5.7e-4, the same whether the weights are cast or autocast casts them.
LOW_PRECISION_TOL = {torch.bfloat16: 1.2e-2, torch.float16: 2e-3}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("implementation", ["reference", "sdpa", "gemm", "auto"])
@pytest.mark.parametrize("cast", ["weights", "autocast"])
def test_low_precision_close_to_float32(dtype, implementation, cast):
    """Within a few times the rounding error of the dtype: a path that loses a term (the local
    output zeroed, a mask dropped) under low precision is off by the size of the context."""
    config = LongformerConfig(
        hidden_size=32, num_attention_heads=4, num_hidden_layers=1, attention_window=8, vocab_size=10
    )
    torch.manual_seed(0)
    layer = LongformerSelfAttention(config, layer=0, attn_implementation=implementation).eval()
    hidden = torch.randn(2, 50, 32)
    attention_mask = torch.ones(2, 50, dtype=torch.long)
    attention_mask[1, 20:] = 0
    mask = AttentionMask.from_masks(attention_mask, (torch.rand(2, 50) < 0.1).long())
    with torch.no_grad():
        full = layer(hidden, mask).context
        if cast == "autocast":
            with torch.autocast("cpu", dtype=dtype):
                low = layer(hidden, mask).context
        else:
            low = layer.to(dtype)(hidden.to(dtype), mask).context
    assert low.dtype == dtype and torch.isfinite(low).all()
    real = attention_mask.bool()
    assert float(full[real].abs().max()) > 0.5
    assert float((low.float() - full)[real].abs().max()) < LOW_PRECISION_TOL[dtype]


@pytest.mark.parametrize("kernel", ["sdpa", "gemm"])
@pytest.mark.parametrize("batch", [1, 2])
def test_fast_path_gradients_equal_reference(kernel, batch):
    """Backward through the banded layout (strided windows, interleaved global keys) for the
    shapes a document brings: one unpadded row (the kernel's output is used as is) and a batch."""
    config = LongformerConfig(
        hidden_size=16, num_attention_heads=2, num_hidden_layers=1, attention_window=6, vocab_size=10
    )
    torch.manual_seed(batch)
    layer = LongformerSelfAttention(config, layer=0).eval()
    hidden = torch.randn(batch, 29, 16)
    attention_mask = torch.ones(batch, 29, dtype=torch.long)
    attention_mask[1:, 20:] = 0
    glob = torch.zeros(batch, 29, dtype=torch.long)
    glob[:, [0, 11]] = 1
    mask = AttentionMask.from_masks(attention_mask, glob)
    weights = torch.randn(batch, 29, 16) * attention_mask[..., None]
    grads = []
    for implementation in ("reference", kernel):
        layer.attn_implementation = implementation
        x = hidden.clone().requires_grad_(True)
        (layer(x, mask).context * weights).sum().backward()
        grads.append(x.grad)
    assert grads[0].abs().max() > 0
    assert float((grads[1] - grads[0]).abs().max()) <= 1e-5
