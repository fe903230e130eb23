"""The fast attention paths run the whole batch at once: the number of operations a layer launches
does not grow with the number of rows (each one a kernel launch on a GPU), and the rows need no
host sync per layer."""

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from spacy_longformer.model import LongformerConfig
from spacy_longformer.model.attention import AttentionMask, LongformerSelfAttention


def _ops_per_layer(rows: int, implementation: str) -> int:
    config = LongformerConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=48,
        attention_window=16, max_position_embeddings=300,
    )  # fmt: skip
    layer = LongformerSelfAttention(config, layer=0, attn_implementation=implementation).eval()
    seq_len = 200
    hidden = torch.randn(rows, seq_len, 32)
    attention_mask = torch.ones(rows, seq_len, dtype=torch.long)
    attention_mask[1:, 150:] = 0  # rows of different lengths
    global_mask = torch.zeros(rows, seq_len, dtype=torch.long)
    global_mask[:, 0] = 1
    global_mask[::2, 5] = 1  # and different numbers of global tokens
    mask = AttentionMask.from_masks(attention_mask, global_mask)
    with torch.no_grad():
        layer(hidden, mask)  # the per-forward layout, which every layer shares, is made here
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            layer(hidden, mask)
    return sum(event.count for event in prof.key_averages())


@pytest.mark.parametrize("implementation", ["sdpa", "gemm"])
def test_launches_do_not_grow_with_rows(implementation):
    counts = {rows: _ops_per_layer(rows, implementation) for rows in (1, 8, 32)}
    # Fewer than one more op per extra row (a loop over rows adds several per row); a kernel may
    # still split its work differently at another size (torch 2.4 adds one fill_ at 32 rows).
    assert counts[32] - counts[8] < 32 - 8, counts
    assert counts[1] <= counts[8], counts


def test_a_layer_syncs_with_the_host_only_for_what_the_mask_caches():
    """`_local_scalar_dense` / `item` are host syncs: none in a layer once the mask's layout exists."""
    config = LongformerConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=48,
        attention_window=16, max_position_embeddings=300,
    )  # fmt: skip
    layer = LongformerSelfAttention(config, layer=0).eval()
    hidden = torch.randn(4, 120, 32)
    global_mask = torch.zeros(4, 120, dtype=torch.long)
    global_mask[:, :3] = 1
    mask = AttentionMask.from_masks(torch.ones(4, 120, dtype=torch.long), global_mask)
    with torch.no_grad():
        layer(hidden, mask)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            layer(hidden, mask)
    names = {event.key for event in prof.key_averages()}
    assert not names & {"aten::_local_scalar_dense", "aten::item", "aten::nonzero"}, names
