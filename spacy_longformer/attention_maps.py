"""Attention maps on a Doc's own tokens: what a global token read, and from whom a word drew.

transformers returns a layer's attention in a *relative* layout: ``attentions[l]`` is
(batch, heads, seq, x + window + 1), column ``x + j`` of query ``i`` being key ``i - window / 2 + j``
and the first ``x`` columns the global tokens, while a global token's own row sits, transposed, in
``global_attentions[l]`` (see ``model.output``). ``attention_map`` turns that into *absolute*
positions on spaCy tokens: ``AttentionMap.row(i)[k]`` is the attention token ``i`` paid to token
``k``.

- **Which keys a row holds.** A local token's row is nonzero only on its neighbours (the pieces
  within ``window / 2`` of its own, in its layer's window) and on the global tokens; a global
  token's row covers every token of its window.
- **Pooling pieces onto tokens.** As a key, each piece counts once, for one token: a piece the
  alignment gives to several tokens counts for the first, and a piece no token claims (a whitespace
  piece) for the next token that has pieces of its own; a token's key weight is the sum over its
  pieces. As a query, a token's row is the mean of its pieces' rows. Each piece's row sums to 1,
  so each token's row sums to 1 over the doc's tokens plus two special columns, kept at the end of
  every row: ``<s>`` and ``</s>`` (every ``</s>``: the end of each window, and a QA doc's
  ``</s></s>`` separator).
- **Long docs.** The doc is rerun window by window as the encoder runs it (``ml.planning``); each
  token's row comes from the window that owns its pieces, the one its state comes from, and covers
  that window's tokens only. ``<s>`` is no token of the doc: its row in each window is
  ``cls_rows[w]``.

``attach=True`` keeps the map on ``doc._.longformer_attention`` (a list, one map per layer and
head; it goes through ``Doc.to_bytes`` and ``DocBin`` with user data), so ``plot_attention`` can
draw it later without the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import srsly
import torch
from spacy.language import Language
from spacy.tokens import Doc, Span, Token
from thinc.api import Model

from .errors import Errors
from .ml.encoder_model import tokenizer_of, torch_model_of
from .ml.planning import DocPlan, plan_doc

EXTENSION = "longformer_attention"
SPECIAL_COLUMNS = ("<s>", "</s>")
CLS = "<s>"

if not Doc.has_extension(EXTENSION):
    Doc.set_extension(EXTENSION, default=None)


@dataclass
class AttentionMap:
    """One layer's attention (one head, or the mean of the heads) over a Doc's tokens.

    Sparse: entry ``e`` says that token ``query[e]`` paid ``weight[e]`` to column ``key[e]``, a
    token index, or ``n_tokens`` (``<s>``) / ``n_tokens + 1`` (``</s>``). ``cls_rows``:
    (n_windows, n_tokens + 2), the row of each window's ``<s>``. ``global_tokens``: the tokens
    with a global piece. ``windows``: the piece ranges the doc ran as.
    """

    layer: int
    head: int | None
    n_layers: int
    n_tokens: int
    query: np.ndarray
    key: np.ndarray
    weight: np.ndarray
    cls_rows: np.ndarray
    global_tokens: np.ndarray
    windows: list[tuple[int, int]] = field(default_factory=list)

    @property
    def n_columns(self) -> int:
        return self.n_tokens + len(SPECIAL_COLUMNS)

    def row(self, token: int) -> np.ndarray:
        """(n_tokens + 2,): what token ``token`` attended to; the last two columns ``<s>``, ``</s>``."""
        if not -self.n_tokens <= token < self.n_tokens:
            raise IndexError(Errors.LF176.format(value=token, n_tokens=self.n_tokens))
        token %= self.n_tokens
        start, end = np.searchsorted(self.query, [token, token + 1])
        out = np.zeros(self.n_columns, dtype="f")
        out[self.key[start:end]] = self.weight[start:end]
        return out

    def to_dense(self) -> np.ndarray:
        """(n_tokens, n_tokens + 2): every row (mind the size on a long doc)."""
        out = np.zeros((self.n_tokens, self.n_columns), dtype="f")
        out[self.query, self.key] = self.weight
        return out

    def is_global(self, token: int) -> bool:
        return bool(np.isin(token % self.n_tokens, self.global_tokens))

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "head": self.head,
            "n_layers": self.n_layers,
            "n_tokens": self.n_tokens,
            "query": self.query,
            "key": self.key,
            "weight": self.weight,
            "cls_rows": self.cls_rows,
            "global_tokens": self.global_tokens,
            "windows": [list(w) for w in self.windows],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttentionMap:
        arrays = {k: np.asarray(data[k]) for k in ("query", "key", "weight", "cls_rows", "global_tokens")}
        scalars = {k: data[k] for k in ("layer", "head", "n_layers", "n_tokens")}
        return cls(**scalars, **arrays, windows=[tuple(w) for w in data["windows"]])


@srsly.msgpack_encoders("spacy_longformer.AttentionMap")
def _serialize_attention_map(obj: Any, chain: Any = None) -> Any:
    if isinstance(obj, AttentionMap):
        return {"__longformer_attention_map__": obj.to_dict()}
    return obj if chain is None else chain(obj)


@srsly.msgpack_decoders("spacy_longformer.AttentionMap")
def _deserialize_attention_map(obj: Any, chain: Any = None) -> Any:
    if isinstance(obj, dict) and "__longformer_attention_map__" in obj:
        return AttentionMap.from_dict(obj["__longformer_attention_map__"])
    return obj if chain is None else chain(obj)


def attention_map(
    source: Language | Model | Any,
    doc: Doc,
    *,
    layer: int = -1,
    head: int | None = None,
    attach: bool = False,
) -> AttentionMap:
    """Rerun ``doc`` through the encoder with attention probabilities and pool them onto its tokens.

    ``source``: a pipeline (its first Longformer encoder: a ``longformer_encoder`` or a task
    component's own), a component, or the encoder model. The doc is planned as the encoder plans
    it (global attention from its getter, windows, a QA doc's question), so pass the doc the
    pipeline made when a getter reads annotations (sentence starts, entities). ``layer``: from 0,
    or negative from the last. ``head``: one head, or None for the mean over the heads.
    ``attach``: keep the map on ``doc._.longformer_attention`` for ``plot_attention``.
    """
    encoder = _find_encoder(source)
    torch_model = torch_model_of(encoder)
    config = torch_model.config
    layer = _check_index("layer", layer, config.num_hidden_layers)
    if head is not None:
        head = _check_index("head", head, config.num_attention_heads)
    window = min(encoder.attrs["max_window_pieces"] or config.max_tokens - 2, config.max_tokens - 2)
    plan = plan_doc(
        doc,
        tokenizer_of(encoder),
        getter=encoder.attrs["global_attention"],
        window=window,
        overlap=encoder.attrs["window_overlap"],
        pair_key=encoder.attrs["question_key"],
    )
    one_sided = config.attention_window[layer] // 2
    device = next(torch_model.parameters()).device
    columns = key_columns(plan, n_tokens=len(doc))
    entries, cls_rows = [], []
    was_training = torch_model.training
    torch_model.eval()
    try:
        with torch.no_grad():
            for w, (_, rows) in enumerate(plan.owned):
                ids, glob = plan.window_inputs(w)
                out = torch_model(
                    input_ids=torch.from_numpy(ids)[None].to(device),
                    global_attention_mask=torch.from_numpy(glob).long()[None].to(device),
                    output_attentions=True,
                )
                local = _pick_head(out.attentions[layer][0], head)
                global_rows = (
                    None
                    if out.global_attentions is None
                    else _pick_head(out.global_attentions[layer][0], head)
                )
                q, k, weight = window_entries(local, global_rows, np.flatnonzero(glob), one_sided=one_sided)
                pieces = _window_pieces(plan, w)
                is_cls = q == 0
                cls_row = np.zeros(len(doc) + len(SPECIAL_COLUMNS), dtype="f")
                np.add.at(cls_row, columns[pieces[k[is_cls]]], weight[is_cls])
                cls_rows.append(cls_row)
                owned = np.isin(q, rows)
                entries.append((pieces[q[owned]], pieces[k[owned]], weight[owned]))
    finally:
        torch_model.train(was_training)
    query_pieces, key_pieces, weights = (np.concatenate(part) for part in zip(*entries, strict=True))
    query, key, weight = pool(query_pieces, columns[key_pieces], weights, alignment=plan.alignment)
    token_global = np.asarray(
        [bool(plan.global_mask[np.asarray(pieces)].any()) for pieces in _token_pieces(plan.alignment)],
        dtype=bool,
    )
    result = AttentionMap(
        layer=layer,
        head=head,
        n_layers=config.num_hidden_layers,
        n_tokens=len(doc),
        query=query,
        key=key,
        weight=weight,
        cls_rows=np.stack(cls_rows),
        global_tokens=np.flatnonzero(token_global),
        windows=list(plan.windows),
    )
    if attach:
        kept = [m for m in (doc._.get(EXTENSION) or []) if (m.layer, m.head) != (layer, head)]
        doc._.set(EXTENSION, [*kept, result])
    return result


def window_entries(
    local: torch.Tensor, global_rows: torch.Tensor | None, global_index: np.ndarray, *, one_sided: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One window's attention in absolute positions, as (query, key, weight) entries of nonzero weight.

    local: (seq, x + 2 * one_sided + 1) in transformers' layout; global_rows: (seq, x), column ``g``
    the row of the ``g``-th global token (``global_attentions``' layout), or None without global
    tokens; global_index: (x,) their positions.
    """
    local = local.float().cpu().numpy()
    seq, width = local.shape
    n_global = len(global_index)
    queries = np.arange(seq)[:, None]
    band_keys = queries - one_sided + np.arange(width - n_global)[None, :]
    parts = [
        (np.broadcast_to(queries, band_keys.shape), band_keys, local[:, n_global:]),
        (
            np.broadcast_to(queries, (seq, n_global)),
            np.broadcast_to(global_index, (seq, n_global)),
            local[:, :n_global],
        ),
    ]
    if global_rows is not None:
        rows = global_rows.float().cpu().numpy().T  # (x, seq): the global tokens' rows
        parts.append(
            (
                np.broadcast_to(global_index[:, None], rows.shape),
                np.broadcast_to(np.arange(seq), rows.shape),
                rows,
            )
        )
    q, k, weight = (np.concatenate([np.ravel(part[i]) for part in parts]) for i in range(3))
    keep = (weight > 0) & (k >= 0) & (k < seq)
    return q[keep], k[keep], weight[keep]


def key_columns(plan: DocPlan, *, n_tokens: int) -> np.ndarray:
    """(n_pieces,) the column each piece counts for as a key: a token (the first that claims it, or
    for a piece none claims, the next token with pieces of its own), ``n_tokens`` for ``<s>``,
    ``n_tokens + 1`` for every ``</s>``."""
    n_pieces = len(plan.ids)
    columns = np.full(n_pieces, -1, dtype="i")
    for token, pieces in reversed(list(enumerate(_token_pieces(plan.alignment)))):
        columns[np.asarray(pieces)] = token
    columns[0] = n_tokens
    separators = [n_pieces - 1] + ([plan.prefix - 2, plan.prefix - 1] if plan.prefix > 1 else [])
    columns[separators] = n_tokens + 1
    claimed = np.flatnonzero(columns >= 0)
    unclaimed = np.flatnonzero(columns < 0)
    following = np.minimum(np.searchsorted(claimed, unclaimed), len(claimed) - 1)
    columns[unclaimed] = columns[claimed[following]]
    return columns


def pool(
    query_pieces: np.ndarray, key_columns: np.ndarray, weights: np.ndarray, *, alignment: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Piece entries onto tokens: each token's row the mean of its pieces' rows, keys summed by
    column. Returns sorted (query token, key column, weight) entries."""
    token_pieces = _token_pieces(alignment)
    order = np.argsort(query_pieces, kind="stable")
    sorted_pieces = query_pieces[order]
    parts_query, parts_key, parts_weight = [], [], []
    for token, pieces in enumerate(token_pieces):
        for piece in pieces:
            start, end = np.searchsorted(sorted_pieces, [piece, piece + 1])
            chosen = order[start:end]
            parts_query.append(np.full(len(chosen), token))
            parts_key.append(key_columns[chosen])
            parts_weight.append(weights[chosen] / len(pieces))
    if not parts_query:
        return np.zeros(0, "i"), np.zeros(0, "i"), np.zeros(0, "f")
    query, key, weight = (np.concatenate(p) for p in (parts_query, parts_key, parts_weight))
    n_columns = int(key.max()) + 1 if len(key) else 1
    cells, inverse = np.unique(query.astype("int64") * n_columns + key, return_inverse=True)
    summed = np.bincount(inverse, weights=weight).astype("f")
    return (cells // n_columns).astype("i"), (cells % n_columns).astype("i"), summed


def plot_attention(
    doc: Doc,
    token_or_span: Token | Span | int | str,
    *,
    layer: int = -1,
    head: int | None = None,
    path: str | Path | None = None,
    nlp: Language | None = None,
    window: int = 0,
    top_k: int = 15,
) -> Any:
    """Draw what a token (or a span, the mean of its tokens' rows, or ``"<s>"`` of ``window``) read:
    its weight on every token of the doc, and its ``top_k`` keys by weight, as words.

    The map comes from ``doc._.longformer_attention`` (``attention_map(..., attach=True)``), or is
    computed with ``nlp`` when given. With ``path``, writes a PNG and returns the path; else returns
    the matplotlib ``Figure``. Needs matplotlib (the ``plot`` extra).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(Errors.LF178) from err
    amap = _attached(doc, layer, head)
    if amap is None:
        if nlp is None:
            raise ValueError(Errors.LF177.format(layer=layer, head=head))
        amap = attention_map(nlp, doc, layer=layer, head=head, attach=True)
    row, label, is_global = _query_row(amap, doc, token_or_span, window)
    words = [token.text for token in doc] + list(SPECIAL_COLUMNS)

    figure = Figure(figsize=(11, 6.5), layout="constrained")
    over_doc, top = figure.subplots(2, 1, height_ratios=[1, 1.3])
    tokens = row[: amap.n_tokens]
    reached = np.flatnonzero(tokens > 0)
    over_doc.bar(np.arange(amap.n_tokens), tokens, width=1.0, color="tab:blue")
    if len(reached) and not is_global:  # a local row: zoom on the neighbourhood it reached
        margin = max(5, (reached[-1] - reached[0]) // 10)
        over_doc.set_xlim(max(-0.5, reached[0] - margin), min(amap.n_tokens - 0.5, reached[-1] + margin))
    over_doc.set_xlabel("key token (position in the doc)")
    over_doc.set_ylabel("attention")
    kind = "global: every token of its window" if is_global else "local: its neighbours and the global tokens"
    specials = ", ".join(f"{name} {row[amap.n_tokens + i]:.3f}" for i, name in enumerate(SPECIAL_COLUMNS))
    over_doc.set_title(
        f"What {label} read (layer {amap.layer}, {'mean of the heads' if head is None else f'head {head}'}; "
        f"{kind}; specials: {specials})",
        fontsize=10,
    )
    best = np.argsort(-row, kind="stable")[:top_k]
    best = best[row[best] > 0]
    top.barh(np.arange(len(best)), row[best], color="tab:orange")
    top.set_yticks(
        np.arange(len(best)), [f"{words[i]!r} ({i})" if i < amap.n_tokens else words[i] for i in best]
    )
    top.invert_yaxis()
    top.set_xlabel(
        f"attention (top {len(best)} keys; a row sums to 1 over the tokens and {', '.join(SPECIAL_COLUMNS)})"
    )
    if path is None:
        return figure
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=120)
    return path


def _query_row(
    amap: AttentionMap, doc: Doc, item: Token | Span | int | str, window: int
) -> tuple[np.ndarray, str, bool]:
    """The row to draw, its label, and whether it is a global row."""
    if isinstance(item, str):
        if item != CLS:
            raise ValueError(Errors.LF176.format(value=item, n_tokens=len(doc)))
        index = _check_index("window", window, len(amap.cls_rows))
        return amap.cls_rows[index], f"<s> of window {index}", True
    if isinstance(item, Token | Span) and item.doc is not doc:
        raise ValueError(Errors.LF176.format(value=item, n_tokens=len(doc)))
    if isinstance(item, Token):
        item = item.i
    if isinstance(item, Span):
        if not len(item):
            raise ValueError(Errors.LF176.format(value=item, n_tokens=len(doc)))
        rows = [amap.row(i) for i in range(item.start, item.end)]
        glob = all(amap.is_global(i) for i in range(item.start, item.end))
        return np.mean(rows, axis=0), repr(item.text), glob
    if isinstance(item, bool) or not isinstance(item, int | np.integer) or not -len(doc) <= item < len(doc):
        raise ValueError(Errors.LF176.format(value=item, n_tokens=len(doc)))
    return amap.row(int(item)), repr(doc[int(item)].text), amap.is_global(int(item))


def _attached(doc: Doc, layer: int, head: int | None) -> AttentionMap | None:
    for amap in doc._.get(EXTENSION) or []:
        if amap.layer == layer % amap.n_layers and amap.head == head:
            return amap
    return None


def _find_encoder(source: Any) -> Model:
    """The first ``longformer_encoder`` model in a pipeline, a component or a model."""
    if isinstance(source, Language):
        models = [
            pipe.model for _, pipe in source.components if isinstance(getattr(pipe, "model", None), Model)
        ]
        found = (
            "the pipeline's components " + ", ".join(source.pipe_names)
            if source.pipe_names
            else "an empty pipeline"
        )
    elif isinstance(source, Model):
        models, found = [source], f"the model {source.name!r}"
    elif isinstance(getattr(source, "model", None), Model):
        models, found = [source.model], f"the component {getattr(source, 'name', type(source).__name__)!r}"
    else:
        models, found = [], f"a {type(source).__name__}"
    for model in models:
        for node in model.walk():
            if node.name == "longformer_encoder":
                return node
    raise ValueError(Errors.LF174.format(found=found))


def _check_index(name: str, value: Any, count: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not -count <= value < count:
        raise ValueError(Errors.LF175.format(name=name, value=value, count=count, last=count - 1))
    return int(value) % count


def _pick_head(probs: torch.Tensor, head: int | None) -> torch.Tensor:
    """(heads, seq, n) -> (seq, n): one head, or the mean of the heads (rows still sum to 1)."""
    return probs.mean(dim=0) if head is None else probs[head]


def _window_pieces(plan: DocPlan, w: int) -> np.ndarray:
    """The doc piece at each row of window ``w``: the prefix, the window's pieces, ``</s>``."""
    start, end = plan.windows[w]
    return np.concatenate([np.arange(plan.prefix), np.arange(start, end), [len(plan.ids) - 1]])


def _token_pieces(alignment: Any) -> list[np.ndarray]:
    lengths = np.asarray(alignment.lengths)
    data = np.asarray(alignment.dataXd)
    return np.split(data, np.cumsum(lengths)[:-1]) if len(lengths) else []
