"""Longformer self-attention: all the attention math of the package lives in this file.

Every token attends to a sliding window of ``window / 2`` neighbours on each side plus all global
tokens; global tokens attend to every token, through their own ``*_global`` projections. Masks are
two booleans per token (``is_pad``, ``is_global``), never transformers' 0/1/2 folded into +-10000.

The rules that make our numbers equal transformers':
- a global token is removed from every sliding window and appears once, in front, as a global key
  (scored with the *local* key/value projections);
- padding keys are excluded everywhere; padding queries get all-zero probabilities;
- scores are masked and soft-maxed in float32, then cast back to the compute dtype;
- a global token's output row is recomputed with ``query_global/key_global/value_global`` over
  all non-padding tokens, and its local-path probabilities are reported as zeros.

Implementations of the sliding window, chosen by ``attn_implementation``:
- ``reference``: walks the sequence in query blocks, scores each block densely against the keys
  its windows can reach, masks the band and soft-maxes explicitly. It returns probabilities in
  transformers' layout and is the oracle for the fast paths.
- ``sdpa`` and ``gemm``: input that fits in one window runs as plain dense attention. Longer rows
  are laid out once per forward pass (``_Band``): blocks of B queries, each against a window of
  about 2 * one_sided + B keys that is a strided view of one copy of the keys, with the global
  keys interleaved so that each window holds them once. Cost is linear in the sequence and in the
  window, and nothing is copied per block. The whole batch is laid out at once (rows padded to
  the longest, global slots to the largest count), so a layer launches the same kernels for one
  row or thirty-two. ``sdpa`` runs each layer as one fused ``scaled_dot_product_attention`` call
  over (batch x blocks); with its band mask, CPU runs torch's flash-attention CPU kernel and CUDA
  the memory-efficient (or cuDNN) kernel, since the flash kernel takes no mask; input that fits in
  one window and has no padding runs unmasked, which CUDA's flash kernel takes. ``gemm`` runs
  batched matmuls + softmax per head (fastest in half precision on CPU).
``auto`` picks by device and dtype, and ``reference`` whenever probabilities are asked for.
``traceable_self_attention`` (at the end) gives the same numbers in ops a tracer keeps at any
length and count of global tokens, for ONNX export (``model/export.py``); nothing eager runs it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

import torch
from torch import Tensor, nn

from .config import LongformerConfig
from .linear import dense

ATTN_IMPLEMENTATIONS = ("auto", "reference", "sdpa", "gemm")

# Masked scores get the most negative finite float, not -inf: a row with every key masked (a
# padding query) then soft-maxes to a uniform row instead of NaN, and its gradient stays finite.
_MASKED = torch.finfo(torch.float32).min


@dataclass
class GlobalTokens:
    """Where each batch item's global tokens are, computed once per forward pass.

    ``index``: (batch, x) positions of the global tokens in order, 0 in empty slots;
    ``valid``: (batch, x) which slots hold a global token. x is the largest count in the batch.
    """

    index: Tensor
    valid: Tensor

    @classmethod
    def from_mask(cls, is_global: Tensor) -> GlobalTokens:
        counts = is_global.sum(dim=1)
        n_slots = int(counts.max()) if is_global.numel() else 0
        # A stable sort of "not global" puts each row's global positions first, in order.
        order = torch.argsort((~is_global).to(torch.int8), dim=1, stable=True)
        valid = torch.arange(n_slots, device=is_global.device)[None, :] < counts[:, None]
        index = order[:, :n_slots].masked_fill(~valid, 0)
        return cls(index=index, valid=valid)

    @property
    def count(self) -> int:
        return self.index.shape[1]

    def flat_positions(self, seq_len: int) -> Tensor:
        """(batch * x,) each slot's row in a (batch * seq_len + 1) flattening; empty slots point at
        the extra last row."""
        rows = torch.arange(len(self.index), device=self.index.device)[:, None] * seq_len
        return torch.where(self.valid, rows + self.index, len(self.index) * seq_len).reshape(-1)


@dataclass
class AttentionMask:
    """``is_pad``, ``is_global``: (batch, seq) booleans; a padding token is never global.

    Made once per forward pass, it also keeps the fast paths' per-row layouts, which every layer
    with the same window shares."""

    is_pad: Tensor
    is_global: Tensor
    global_tokens: GlobalTokens
    _bands: dict[tuple[int, int], _Band] = field(default_factory=dict, repr=False)

    @classmethod
    def from_masks(cls, attention_mask: Tensor, global_attention_mask: Tensor | None) -> AttentionMask:
        is_pad = attention_mask == 0
        # 2 in attention_mask also means global, as in transformers and allenai's code.
        is_global = attention_mask == 2
        if global_attention_mask is not None:
            is_global = is_global | (global_attention_mask != 0)
        is_global = is_global & ~is_pad
        return cls(is_pad=is_pad, is_global=is_global, global_tokens=GlobalTokens.from_mask(is_global))

    @cached_property
    def any_padding(self) -> bool:
        """Whether any row has padding (one host sync per forward pass)."""
        return bool(self.is_pad.any())

    @cached_property
    def longest(self) -> int:
        """The longest row with trailing padding cut (one host sync per forward pass)."""
        real = ~self.is_pad
        if not real.numel():
            return 0
        positions = torch.arange(1, real.shape[1] + 1, device=real.device)
        return int(torch.where(real, positions, 0).amax())

    def band(self, *, one_sided: int, block: int) -> _Band:
        key = (one_sided, block)
        if key not in self._bands:
            self._bands[key] = _Band.build(self, self.longest, one_sided=one_sided, block=block)
        return self._bands[key]


@dataclass
class AttentionOutput:
    """``context``: (batch, seq, hidden). ``local_probs``: (batch, heads, seq, x + window + 1) and
    ``global_probs``: (batch, heads, x, seq), only when probabilities were asked for."""

    context: Tensor
    local_probs: Tensor | None = None
    global_probs: Tensor | None = None


def reference_local_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    mask: AttentionMask,
    *,
    one_sided: int,
    head_mask: Tensor | None = None,
    dropout: float = 0.0,
    training: bool = False,
    output_attentions: bool = False,
    block_size: int | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Sliding-window attention plus attention to the global keys, for every query.

    query, key, value: (batch, heads, seq, head_dim), query already scaled by 1/sqrt(head_dim).
    Returns the context (batch, heads, seq, head_dim) and, if asked, the probabilities in
    transformers' layout (batch, heads, seq, x + 2 * one_sided + 1). Rows of global queries are
    computed (and zeroed in the probabilities) but overwritten by the caller.
    """
    batch, heads, seq_len, _ = query.shape
    n_global = mask.global_tokens.count
    band_offsets = torch.arange(-one_sided, one_sided + 1, device=query.device)
    contexts, all_probs = [], []
    for part in _blocks(key, value, mask, one_sided=one_sided, block=block_size or max(2 * one_sided, 256)):
        scores = (query[:, :, part.start : part.end] @ part.keys.transpose(-1, -2)).float()
        probs = torch.softmax(scores.masked_fill(~part.allowed, _MASKED), dim=-1)
        if head_mask is not None:
            probs = probs * head_mask.view(1, heads, 1, 1)
        probs = probs.masked_fill(mask.is_pad[:, None, part.start : part.end, None], 0.0).to(value.dtype)
        dropped = nn.functional.dropout(probs, p=dropout, training=training)
        contexts.append(dropped @ part.values)
        if output_attentions:
            # Column j of the band is key i - one_sided + j; keys off either end get zero.
            band_keys = (
                torch.arange(part.start, part.end, device=query.device)[:, None] + band_offsets[None, :]
            )
            on_sequence = (band_keys >= 0) & (band_keys < seq_len)
            columns = n_global + (band_keys - part.key_start).clamp(0, part.keys.shape[2] - n_global - 1)
            band = dropped.gather(-1, columns.expand(batch, heads, -1, -1)).masked_fill(~on_sequence, 0.0)
            block_probs = torch.cat([dropped[..., :n_global], band], dim=-1)
            all_probs.append(
                block_probs.masked_fill(mask.is_global[:, None, part.start : part.end, None], 0.0)
            )
    context = torch.cat(contexts, dim=2)
    return context, (torch.cat(all_probs, dim=2) if output_attentions else None)


@dataclass
class _Block:
    """One block of queries and the keys their windows reach, global keys first."""

    start: int
    end: int
    key_start: int  # position of the first window key
    keys: Tensor  # (batch, heads, x + reach, head_dim)
    values: Tensor
    allowed: Tensor  # (batch, 1, block, x + reach) bool


def _blocks(
    key: Tensor, value: Tensor, mask: AttentionMask, *, one_sided: int, block: int
) -> Iterator[_Block]:
    """Cut the sequence into query blocks (every implementation walks these).

    A padding query may attend to every key of its block (its row is zeroed after), so no row is
    fully masked and no kernel ever sees an empty softmax.
    """
    batch, heads, seq_len, head_dim = key.shape
    n_global = mask.global_tokens.count
    local_key_ok = ~(mask.is_pad | mask.is_global)
    if n_global:
        gather_index = mask.global_tokens.index[:, None, :, None].expand(batch, heads, n_global, head_dim)
        global_keys = key.gather(2, gather_index)
        global_values = value.gather(2, gather_index)
        global_key_ok = mask.global_tokens.valid[:, None, None, :]
    pad_query = mask.is_pad[:, None, :, None]
    for start in range(0, seq_len, block):
        end = min(seq_len, start + block)
        key_start, key_end = max(0, start - one_sided), min(seq_len, end + one_sided)
        q_pos = torch.arange(start, end, device=key.device)
        k_pos = torch.arange(key_start, key_end, device=key.device)
        in_band = (k_pos[None, :] - q_pos[:, None]).abs() <= one_sided
        allowed = in_band[None, None] & local_key_ok[:, None, None, key_start:key_end]
        keys, values = key[:, :, key_start:key_end], value[:, :, key_start:key_end]
        if n_global:
            allowed = torch.cat([global_key_ok.expand(-1, -1, end - start, -1), allowed], dim=-1)
            keys = torch.cat([global_keys, keys], dim=2)
            values = torch.cat([global_values, values], dim=2)
        yield _Block(start, end, key_start, keys, values, allowed | pad_query[:, :, start:end])


@dataclass
class _Band:
    """The whole batch laid out for the fast paths, once per forward pass and window.

    Rows are padded to the longest and to a whole number of query blocks; every row has ``x``
    global slots, the batch's largest count (empty slots masked). Keys are stored as segments: the
    row's ``x`` global keys, then ``block`` consecutive tokens. Block i's window is segments
    i .. i + 2 * reach, a view of that storage (no per-block copies); it holds the global keys once
    (in its first segment; the other copies are masked) and every token its queries' windows can
    reach. All rows and blocks then run as one kernel call per layer, whatever the batch: the
    number of launches does not grow with the rows, and nothing depends on tensor values.
    """

    block: int
    reach: int
    length: int  # the longest row, cut to n_blocks * block queries
    global_index: Tensor  # (batch, x) positions of each row's global tokens, 0 in empty slots
    allowed: Tensor  # (batch * n_blocks, block, window) bool
    query_pad: Tensor  # (batch, length) queries whose rows are zeroed
    biases: dict[torch.dtype, Tensor]

    @property
    def n_blocks(self) -> int:
        return -(-self.length // self.block)

    @property
    def window(self) -> int:
        return (2 * self.reach + 1) * (self.global_index.shape[1] + self.block)

    def bias(self, dtype: torch.dtype) -> Tensor:
        """``allowed`` as an additive mask (batch * n_blocks, 1, block, window), made once per dtype.

        Its rows are allocated a multiple of 8 wide and sliced, so the kernels that want aligned
        masks read it in place."""
        if dtype not in self.biases:
            rows, block, window = self.allowed.shape
            aligned = torch.zeros(
                rows, 1, block, -(-window // 8) * 8, dtype=dtype, device=self.allowed.device
            )
            bias = aligned[..., :window]
            self.biases[dtype] = bias.masked_fill_(~self.allowed[:, None], torch.finfo(dtype).min)
        return self.biases[dtype]

    def segments(self, states: Tensor) -> Tensor:
        """(batch, seq, heads, head_dim) -> windows (batch * n_blocks, heads, window, head_dim)."""
        batch, _, heads, head_dim = states.shape
        x, block, reach, n_blocks = self.global_index.shape[1], self.block, self.reach, self.n_blocks
        tokens = states[:, : self.length]
        # reach empty segments on either side, so the first and last blocks' windows exist.
        tokens = nn.functional.pad(
            tokens, (0, 0, 0, 0, reach * block, (n_blocks + reach) * block - self.length)
        )
        tokens = tokens.view(batch, n_blocks + 2 * reach, block, heads, head_dim)
        if x:
            gathered = states.gather(1, self.global_index[:, :, None, None].expand(batch, x, heads, head_dim))
            globals_ = gathered[:, None].expand(batch, n_blocks + 2 * reach, x, heads, head_dim)
            tokens = torch.cat([globals_, tokens], dim=2)
        flat = tokens.reshape(batch, -1, heads, head_dim)
        windows = flat.unfold(1, self.window, x + block)  # (batch, n_blocks, heads, head_dim, window)
        return windows.permute(0, 1, 2, 4, 3).reshape(batch * n_blocks, heads, self.window, head_dim)

    def queries(self, states: Tensor) -> Tensor:
        """(batch, seq, heads, head_dim) -> (batch * n_blocks, heads, block, head_dim)."""
        batch, _, heads, head_dim = states.shape
        padded = self.n_blocks * self.block
        states = nn.functional.pad(states[:, : self.length], (0, 0, 0, 0, 0, padded - self.length))
        return states.reshape(batch * self.n_blocks, self.block, heads, head_dim).transpose(1, 2)

    def unblock(self, out: Tensor, seq_len: int) -> Tensor:
        """(batch * n_blocks, block, heads * head_dim) -> (batch, seq_len, heads * head_dim), padding
        queries zeroed."""
        batch = self.query_pad.shape[0]
        out = out.reshape(batch, self.n_blocks * self.block, -1)[:, : self.length]
        out = out.masked_fill(self.query_pad[:, :, None], 0.0)
        return nn.functional.pad(out, (0, 0, 0, seq_len - self.length))

    @classmethod
    def build(cls, mask: AttentionMask, length: int, *, one_sided: int, block: int) -> _Band:
        device = mask.is_pad.device
        reach = max(1, round(one_sided / block))
        block = -(-one_sided // reach)  # reach * block >= one_sided: the windows cover the band
        n_blocks = -(-length // block)
        is_pad, is_global = mask.is_pad[:, :length], mask.is_global[:, :length]
        tokens = mask.global_tokens
        x = tokens.count
        segment = x + block
        slot = torch.arange((2 * reach + 1) * segment, device=device)
        which, offset = slot // segment, slot % segment
        global_slot = offset < x
        # Token position of every window slot, per block: (n_blocks, window), the same for every row.
        position = (torch.arange(n_blocks, device=device)[:, None] + which - reach) * block + offset - x
        on_row = (position >= 0) & (position < length) & ~global_slot
        usable = ~(is_pad | is_global)  # (batch, length)
        key_ok = on_row & usable[:, position.clamp(0, length - 1)]  # (batch, n_blocks, window)
        # A slot's distance to a query depends on the query's place in its block, not on the block.
        distance = (which - reach) * block + offset - x - torch.arange(block, device=device)[:, None]
        allowed = key_ok[:, :, None, :] & (distance.abs() <= one_sided)  # (batch, n_blocks, block, window)
        if x:
            slot_valid = tokens.valid[:, offset.clamp(max=x - 1)]  # (batch, window)
            allowed |= (global_slot & (which == 0) & slot_valid)[:, None, None, :]
        query = torch.arange(n_blocks * block, device=device)
        query_pad = (query >= length) | is_pad[:, query.clamp(max=length - 1)]  # (batch, n_blocks * block)
        # Padding queries may attend anywhere (their rows are zeroed), so no row is fully masked.
        allowed |= query_pad.view(-1, n_blocks, block)[..., None]
        batch = is_pad.shape[0]
        return cls(
            block,
            reach,
            length,
            tokens.index,
            allowed.view(batch * n_blocks, block, -1),
            query_pad[:, :length],
            {},
        )


def fast_local_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    mask: AttentionMask,
    *,
    one_sided: int,
    kernel: str = "sdpa",
    scale: float = 1.0,
    head_mask: Tensor | None = None,
    dropout: float = 0.0,
    training: bool = False,
    block_size: int | None = None,
) -> Tensor:
    """``reference_local_attention``'s context (batch, heads, seq, head_dim), no probabilities.

    ``query`` is scaled here by ``scale``. Inputs that fit in one window run as dense attention
    over the batch. Longer inputs run as blocks of B queries of every row at once, each against its
    ``_Band`` window of about 2 * one_sided + B keys plus the global keys, so cost is linear in the
    sequence and in the window, and the launches per layer don't depend on the batch. ``kernel``:
    ``sdpa``, one fused ``scaled_dot_product_attention`` call per layer (best in float32 and on
    CUDA), or ``gemm``, batched matmuls + softmax per head (best in half precision on CPU).
    """
    batch, heads, seq_len, head_dim = query.shape
    p = dropout if training else 0.0
    longest = mask.longest
    if longest <= one_sided + 1:
        context = _dense(query, key, value, mask, longest, scale=scale, dropout=p)
    else:
        # Measured on CPU (window 512, both kernels): B = one_sided / 2, at most 128, is best.
        band = mask.band(one_sided=one_sided, block=block_size or min(max(one_sided // 2, 32), 128))
        q, k, v = (t.transpose(1, 2) for t in (query, key, value))  # (batch, seq, heads, head_dim)
        q, k, v = band.queries(q), band.segments(k), band.segments(v)
        if kernel == "sdpa":
            out = nn.functional.scaled_dot_product_attention(
                q, k, v, attn_mask=band.bias(q.dtype), dropout_p=p, scale=scale
            ).transpose(1, 2)
        else:
            # unbind, not q[:, h]: its backward stacks the heads' gradients once, where
            # indexing would zero a whole (blocks, heads, window, dim) gradient per head.
            heads_qkv = zip(q.unbind(1), k.unbind(1), v.unbind(1), strict=True)
            out = torch.stack([_gemm_head(*qkv, band, scale, p) for qkv in heads_qkv], 2)
        context = band.unblock(out.reshape(out.shape[0], band.block, heads * head_dim), seq_len)
        context = context.view(batch, seq_len, heads, head_dim).transpose(1, 2)
    if head_mask is not None:
        # The head mask scales probabilities, so it scales each head's weighted sum the same way.
        context = context * head_mask.view(1, heads, 1, 1).to(context.dtype)
    return context


def _gemm_head(q: Tensor, k: Tensor, v: Tensor, band: _Band, scale: float, dropout: float) -> Tensor:
    """One head of every block: (n_blocks, block, head_dim) against (n_blocks, window, head_dim)."""
    scores = torch.baddbmm(band.bias(q.dtype)[:, 0], q, k.transpose(1, 2), alpha=scale)
    # softmax of a half-precision input accumulates in float32 (as transformers' does).
    probs = nn.functional.dropout(torch.softmax(scores, dim=-1), p=dropout, training=dropout > 0)
    return probs @ v


def _dense(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    mask: AttentionMask,
    length: int,
    *,
    scale: float,
    dropout: float,
) -> Tensor:
    """Every real key is in every query's window: plain attention over the batch, padding masked.

    Global keys need no special case (each is in every window once)."""
    batch, heads, seq_len, head_dim = query.shape
    if length == 0:
        return torch.zeros_like(query)
    is_pad = mask.is_pad[:, :length]
    padded = mask.any_padding
    # An all-padding row may attend anywhere (it is zeroed), so no row is fully masked. Without
    # padding no mask at all, which lets CUDA pick its flash kernel.
    allowed = (~is_pad | is_pad.all(dim=1, keepdim=True))[:, None, None, :] if padded else None
    part = nn.functional.scaled_dot_product_attention(
        query[:, :, :length],
        key[:, :, :length],
        value[:, :, :length],
        attn_mask=allowed,
        dropout_p=dropout,
        scale=scale,
    )
    if padded:
        part = part.masked_fill(is_pad[:, None, :, None], 0.0)
    return nn.functional.pad(part, (0, 0, 0, seq_len - length))


def resolve_implementation(name: str, query: Tensor, *, output_attentions: bool = False) -> str:
    """The path ``auto`` takes: measured fastest for the device and dtype (benchmarks/encoder.py)."""
    if output_attentions:
        return "reference"
    if name != "auto":
        return name
    if query.device.type == "cpu" and query.dtype in (torch.bfloat16, torch.float16):
        return "gemm"
    return "sdpa"


class LongformerSelfAttention(nn.Module):
    """Local + global self-attention of one layer (window from ``config.attention_window[layer]``)."""

    def __init__(self, config: LongformerConfig, *, layer: int, attn_implementation: str = "auto") -> None:
        super().__init__()
        hidden = config.hidden_size
        self.attn_implementation = attn_implementation
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.one_sided = config.attention_window[layer] // 2
        self.dropout = config.attention_probs_dropout_prob
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.query_global = nn.Linear(hidden, hidden)
        self.key_global = nn.Linear(hidden, hidden)
        self.value_global = nn.Linear(hidden, hidden)

    def forward(
        self,
        hidden_states: Tensor,
        mask: AttentionMask,
        *,
        head_mask: Tensor | None = None,
        output_attentions: bool = False,
    ) -> AttentionOutput:
        """hidden_states: (batch, seq, hidden) -> context (batch, seq, hidden)."""
        scale = 1.0 / math.sqrt(self.head_dim)
        query = self._split_heads(dense(hidden_states, self.query))
        key = self._split_heads(dense(hidden_states, self.key))
        value = self._split_heads(dense(hidden_states, self.value))
        settings = dict(
            one_sided=self.one_sided, head_mask=head_mask, dropout=self.dropout, training=self.training
        )
        implementation = resolve_implementation(
            self.attn_implementation, query, output_attentions=output_attentions
        )
        if implementation == "reference":
            context, local_probs = reference_local_attention(
                query * scale, key, value, mask, output_attentions=output_attentions, **settings
            )
        else:
            context = fast_local_attention(
                query, key, value, mask, kernel=implementation, scale=scale, **settings
            )
            local_probs = None
        context = self._merge_heads(context)
        global_probs = None
        if mask.global_tokens.count:
            if implementation == "reference":
                global_context, global_probs = self._global_rows(hidden_states, mask, head_mask=head_mask)
            else:
                global_context = self._fast_global_rows(hidden_states, mask, head_mask=head_mask)
            context = _overwrite_rows(context, global_context, mask.global_tokens)
        return AttentionOutput(
            context=context,
            local_probs=local_probs,
            global_probs=global_probs if output_attentions else None,
        )

    def _global_rows(
        self, hidden_states: Tensor, mask: AttentionMask, *, head_mask: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """Global tokens' outputs over all non-padding tokens (batch, x, hidden), and their
        probabilities (batch, heads, x, seq)."""
        query = self._global_queries(hidden_states, mask.global_tokens)
        key = self._split_heads(self.key_global(hidden_states))
        value = self._split_heads(self.value_global(hidden_states))
        scores = (query @ key.transpose(-1, -2)).float()  # (batch, heads, x, seq)
        scores = scores.masked_fill(mask.is_pad[:, None, None, :], _MASKED)
        probs = torch.softmax(scores, dim=-1)
        if head_mask is not None:
            probs = probs * head_mask.view(1, self.num_heads, 1, 1)
        probs = probs.to(value.dtype)
        dropped = nn.functional.dropout(probs, p=self.dropout, training=self.training)
        return self._merge_heads(dropped @ value), probs

    def _fast_global_rows(
        self, hidden_states: Tensor, mask: AttentionMask, *, head_mask: Tensor | None
    ) -> Tensor:
        """``_global_rows``' outputs through fused attention, without probabilities.

        With few global tokens (x * heads < hidden) the global key and value projections are
        folded into the attention instead of run over every token: a key's bias adds the same
        score to every key and cancels in the softmax, and probabilities summing to one carry the
        value bias through unchanged. That saves two (seq x hidden x hidden) matmuls per layer.
        """
        tokens = mask.global_tokens
        batch, seq_len, hidden = hidden_states.shape
        heads, head_dim, n_global = self.num_heads, self.head_dim, tokens.count
        query = self._global_queries(hidden_states, tokens)
        # Empty slots may attend anywhere (their rows are dropped), so no row is fully masked.
        allowed = ~mask.is_pad[:, None, None, :] | ~tokens.valid[:, None, :, None]  # (batch, 1, x, seq)
        dropout = self.dropout if self.training else 0.0
        if n_global * heads >= hidden or dropout > 0:
            key = self._split_heads(self.key_global(hidden_states))
            value = self._split_heads(self.value_global(hidden_states))
            context = nn.functional.scaled_dot_product_attention(
                query, key, value, attn_mask=allowed, dropout_p=dropout, scale=1.0
            )
        else:
            key_weight = self.key_global.weight.view(heads, head_dim, hidden)
            value_weight = self.value_global.weight.view(heads, head_dim, hidden)
            folded = torch.einsum("bhxd,hdk->bhxk", query, key_weight).reshape(
                batch, 1, heads * n_global, hidden
            )
            states = hidden_states[:, None]  # one "head" shared by every (head, slot) query row
            mixed = nn.functional.scaled_dot_product_attention(
                folded, states, states, attn_mask=allowed.repeat(1, 1, heads, 1), scale=1.0
            ).view(batch, heads, n_global, hidden)
            context = torch.einsum("bhxk,hdk->bhxd", mixed, value_weight)
            context = context + self.value_global.bias.view(1, heads, 1, head_dim)
        if head_mask is not None:
            context = context * head_mask.view(1, heads, 1, 1).to(context.dtype)
        return self._merge_heads(context)

    def _global_queries(self, hidden_states: Tensor, tokens: GlobalTokens) -> Tensor:
        """The global tokens' scaled ``query_global`` projections: (batch, heads, x, head_dim)."""
        batch, _, hidden = hidden_states.shape
        global_hidden = hidden_states.gather(1, tokens.index[..., None].expand(batch, tokens.count, hidden))
        return self._split_heads(self.query_global(global_hidden) * (1.0 / math.sqrt(self.head_dim)))

    def _split_heads(self, x: Tensor) -> Tensor:
        """(batch, seq, hidden) -> (batch, heads, seq, head_dim)"""
        batch, seq_len, _ = x.shape
        return x.view(batch, seq_len, self.num_heads, self.head_dim).transpose(1, 2)

    def _merge_heads(self, x: Tensor) -> Tensor:
        """(batch, heads, seq, head_dim) -> (batch, seq, hidden)"""
        batch, _, seq_len, _ = x.shape
        return x.transpose(1, 2).reshape(batch, seq_len, self.num_heads * self.head_dim)


def _overwrite_rows(context: Tensor, rows: Tensor, tokens: GlobalTokens) -> Tensor:
    """Put ``rows`` (batch, x, hidden) at the global positions of ``context`` (batch, seq, hidden).

    Through the flat positions cached on ``tokens`` (no boolean indexing, so no host sync): empty
    slots write into one spare row that is dropped. Out of place: ``context`` may be a view of a
    kernel's output that its backward needs."""
    batch, seq_len, hidden = context.shape
    flat = torch.cat([context.reshape(batch * seq_len, hidden), context.new_zeros(1, hidden)])
    flat = flat.index_copy(0, tokens.flat_positions(seq_len), rows.reshape(-1, hidden).to(context.dtype))
    return flat[:-1].view(batch, seq_len, hidden)


# --- Traceable path (ONNX export) -----------------------------------------------------------------------
#
# The eager paths above read tensor values on the host (``mask.longest``, the global count) to pick
# shapes and branches; a traced graph would freeze those values. This path has the same numbers and
# no host reads: every shape follows from the input's shape or from graph ops (the global-slot
# count is a reduction inside the graph), with no ``as_strided``. Rows are padded to whole blocks of
# ``one_sided`` queries; block i's window is blocks i - 1, i, i + 1 (3 * one_sided keys), a copy made
# by three slices of the block-padded keys. It costs a little more than the fast paths (wider
# windows, the global projections always run) and is meant for export, not for PyTorch users.


@dataclass
class TraceableMask:
    """``AttentionMask`` for a traced graph: (batch, seq) booleans and the global slots.

    ``global_index``: (batch, x) positions of each row's global tokens in order, 0 in empty slots;
    ``global_valid``: (batch, x) which slots hold one; ``global_slot``: (batch, seq) each token's
    slot (only meaningful where ``is_global``). x = max(1, the largest count in the batch), so
    the graph never meets a zero-sized slot axis.
    """

    is_pad: Tensor
    is_global: Tensor
    global_index: Tensor
    global_valid: Tensor
    global_slot: Tensor

    @classmethod
    def from_masks(cls, attention_mask: Tensor, global_attention_mask: Tensor) -> TraceableMask:
        """The rules of ``AttentionMask.from_masks``, in graph ops only."""
        is_pad = attention_mask == 0
        is_global = ((attention_mask == 2) | (global_attention_mask != 0)) & ~is_pad
        counts = is_global.sum(dim=1)  # (batch,)
        positions = torch.cumsum(torch.ones_like(attention_mask), dim=1) - 1  # (batch, seq)
        # Globals first, in order: the sort keys are unique, so no stable sort is needed.
        order = torch.argsort(torch.where(is_global, positions, positions + is_global.shape[1]), dim=1)
        n_slots = counts.amax(dim=0).clamp(min=1)
        # Slot ids 0 .. x - 1 as a graph-sized tensor (nonzero), never as a Python int.
        slot_ids = torch.nonzero(positions[0] < n_slots)[:, 0]  # (x,); x <= seq since counts <= seq
        valid = slot_ids[None, :] < counts[:, None]
        index = order.index_select(1, slot_ids).masked_fill(~valid, 0)
        slot = (torch.cumsum(is_global.long(), dim=1) - 1).clamp(min=0)
        return cls(is_pad, is_global, index, valid, torch.minimum(slot, n_slots - 1))


def traceable_local_attention(
    query: Tensor, key: Tensor, value: Tensor, mask: TraceableMask, *, one_sided: int
) -> Tensor:
    """``reference_local_attention``'s context, in ops a tracer keeps whatever the input.

    query (already scaled), key, value: (batch, heads, seq, head_dim) -> (batch, heads, seq,
    head_dim). Block i of ``one_sided`` queries scores the x global keys, then its window of the
    blocks i - 1, i, i + 1: key slot s is at distance s - one_sided - a from query a of the block.
    """
    batch, heads, seq_len, head_dim = query.shape
    w = one_sided
    # Pad by a whole block, then cut to n_blocks * w: no pad amount computed from values.
    n_blocks = (seq_len + w - 1) // w
    padded = n_blocks * w

    def blocks(t: Tensor) -> Tensor:
        """(..., seq, d) -> (..., n_blocks, w, d), zeros past the end. The pad is one whole block
        (a constant) cut back to n_blocks * w, so no pad amount is computed from a shape."""
        return nn.functional.pad(t, (0, 0, 0, w))[..., :padded, :].unflatten(-2, (-1, w))

    def windows(t: Tensor) -> Tensor:
        """(..., seq, d) -> (..., n_blocks, 3 * w, d): blocks i - 1, i, i + 1, zeros off the ends."""
        t = nn.functional.pad(blocks(t), (0, 0, 0, 0, 1, 1))
        return torch.cat([t[..., :-2, :, :], t[..., 1:-1, :, :], t[..., 2:, :, :]], dim=-2)

    q = blocks(query)  # (batch, heads, n_blocks, w, head_dim)
    k, v = windows(key), windows(value)  # (batch, heads, n_blocks, 3w, head_dim)
    key_ok = windows((~(mask.is_pad | mask.is_global))[..., None])[..., 0]  # (batch, n_blocks, 3w)
    slot = torch.arange(3 * w, device=query.device)
    in_band = (slot[None, :] - w - torch.arange(w, device=query.device)[:, None]).abs() <= w  # (w, 3w)
    local_ok = key_ok[:, None, :, None, :] & in_band  # (batch, 1, n_blocks, w, 3w)
    gather = mask.global_index[:, None, :, None].expand(-1, heads, -1, head_dim)
    global_keys, global_values = key.gather(2, gather), value.gather(2, gather)  # (batch, heads, x, d)
    global_ok = mask.global_valid[:, None, None, None, :]  # (batch, 1, 1, 1, x)
    # Fully masked rows (padding queries) soft-max to uniform, not NaN: _MASKED is finite.
    scores = torch.cat(
        [
            (q @ global_keys[:, :, None].transpose(-1, -2)).float().masked_fill(~global_ok, _MASKED),
            (q @ k.transpose(-1, -2)).float().masked_fill(~local_ok, _MASKED),
        ],
        dim=-1,
    )  # (batch, heads, n_blocks, w, x + 3w)
    probs = torch.softmax(scores, dim=-1).to(value.dtype)
    context = probs[..., : -3 * w] @ global_values[:, :, None] + probs[..., -3 * w :] @ v
    context = context.flatten(2, 3)[:, :, :seq_len]
    return context.masked_fill(mask.is_pad[:, None, :, None], 0.0)


def traceable_self_attention(
    attention: LongformerSelfAttention, hidden_states: Tensor, mask: TraceableMask
) -> Tensor:
    """``attention(hidden_states, mask).context`` (inference, no head mask) for a traced graph.

    hidden_states: (batch, seq, hidden) -> (batch, seq, hidden). Global rows are recomputed with
    the ``*_global`` projections over all non-padding tokens and put in place with a ``where``."""
    batch, seq_len, hidden = hidden_states.shape
    scale = 1.0 / math.sqrt(attention.head_dim)
    split, merge = attention._split_heads, attention._merge_heads
    query = split(attention.query(hidden_states)) * scale
    key, value = split(attention.key(hidden_states)), split(attention.value(hidden_states))
    context = merge(traceable_local_attention(query, key, value, mask, one_sided=attention.one_sided))
    global_hidden = hidden_states.gather(1, mask.global_index[..., None].expand(-1, -1, hidden))
    global_query = split(attention.query_global(global_hidden)) * scale  # (batch, heads, x, head_dim)
    global_key = split(attention.key_global(hidden_states))
    global_value = split(attention.value_global(hidden_states))
    scores = (global_query @ global_key.transpose(-1, -2)).float()  # (batch, heads, x, seq)
    probs = torch.softmax(scores.masked_fill(mask.is_pad[:, None, None, :], _MASKED), dim=-1)
    global_context = merge(probs.to(global_value.dtype) @ global_value)  # (batch, x, hidden)
    rows = global_context.gather(1, mask.global_slot[..., None].expand(-1, -1, hidden))
    return torch.where(mask.is_global[..., None], rows.to(context.dtype), context)
