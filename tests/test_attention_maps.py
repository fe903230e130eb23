"""attention_map and plot_attention: a layer's attention in absolute positions on spaCy tokens.

Checked against hand-computed small cases (the layout and the pooling rule), against attention
probabilities written from the definition (softmax of scaled dot products over the band and the
global tokens), and against the reference path's probabilities in transformers' layout, window by
window, for a doc of several windows.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import spacy
import torch
from spacy.tokens import Doc
from thinc.types import Ragged

import spacy_longformer
from spacy_longformer import make_qa_doc
from spacy_longformer.attention_maps import (
    AttentionMap,
    attention_map,
    key_columns,
    plot_attention,
    pool,
    window_entries,
)
from spacy_longformer.ml.encoder_model import tokenizer_of, torch_model_of
from spacy_longformer.ml.planning import DocPlan, plan_doc
from spacy_longformer.model import LongformerModel
from spacy_longformer.random_checkpoint import synthetic_text

GLOBAL = {"@misc": "spacy-longformer.global_attention.v1", "cls": True, "spans_key": "topic"}


@pytest.fixture(scope="module")
def nlp(tiny_checkpoint):
    nlp = spacy.blank("en")
    config = {"name": str(tiny_checkpoint), "window_overlap": 32, "global_attention": GLOBAL}
    nlp.add_pipe("longformer_encoder", config={"model": config})
    nlp.initialize()
    return nlp


def _doc(nlp, n_words: int, topic: slice = slice(3, 5)) -> Doc:
    doc = nlp.make_doc(synthetic_text(n_words, seed=5) + "  and  spaces")
    doc.spans["topic"] = [doc[topic]]
    return nlp(doc)


# --- hand-computed cases ------------------------------------------------------------------------------


def test_the_relative_layout_becomes_absolute_by_hand():
    """5 pieces, window 2 (one neighbour each side), piece 0 global: transformers' columns are
    [global 0, i - 1, i, i + 1]; a global key inside the band reads 0 there; piece 0's own row is in
    the global rows."""
    local = torch.tensor(
        [
            [0.0, 0.0, 0.0, 0.0],  # the global query's local row: zeros
            [0.5, 0.0, 0.3, 0.2],  # key 0 is global: counted once, in front
            [0.1, 0.3, 0.4, 0.2],
            [0.1, 0.2, 0.3, 0.4],
            [0.25, 0.25, 0.5, 0.0],  # key 5 does not exist
        ]
    )
    global_rows = torch.full((5, 1), 0.2)
    q, k, w = window_entries(local, global_rows, np.array([0]), one_sided=1)
    dense = np.zeros((5, 5))
    np.add.at(dense, (q, k), w)
    expected = [
        [0.2, 0.2, 0.2, 0.2, 0.2],
        [0.5, 0.3, 0.2, 0.0, 0.0],
        [0.1, 0.3, 0.4, 0.2, 0.0],
        [0.1, 0.0, 0.2, 0.3, 0.4],
        [0.25, 0.0, 0.0, 0.25, 0.5],
    ]
    np.testing.assert_allclose(dense, expected, atol=1e-7)


def test_pooling_onto_tokens_by_hand():
    """<s> a b c d </s>; token 0 = pieces a b, token 1 = d, token 2 = d too (shared); piece c no
    token claims. As keys: d counts for token 1 (the first), c for the next token with pieces (1).
    As queries: token 0 is the mean of a's and b's rows; tokens 1 and 2 read d's row."""
    alignment = Ragged(np.array([1, 2, 4, 4], dtype="i"), np.array([2, 1, 1], dtype="i"))
    plan = DocPlan(
        ids=np.arange(6),
        global_mask=np.zeros(6, dtype=bool),
        alignment=alignment,
        prefix=1,
        windows=[(1, 5)],
        owned=[(np.arange(6), np.arange(6))],
    )
    columns = key_columns(plan, n_tokens=3)
    assert columns.tolist() == [3, 0, 0, 1, 1, 4]  # <s> is column 3, </s> column 4
    rows = {
        1: [0.1, 0.2, 0.3, 0.4, 0.0, 0.0],
        2: [0.1, 0.0, 0.2, 0.3, 0.4, 0.0],
        4: [0.0, 0.0, 0.5, 0.1, 0.2, 0.2],
    }
    q = np.array([p for p, row in rows.items() for w in row if w])
    k = np.array([key for row in rows.values() for key, w in enumerate(row) if w])
    w = np.array([w for row in rows.values() for w in row if w])
    query, key, weight = pool(q, columns[k], w, alignment=alignment)
    dense = np.zeros((3, 5))
    dense[query, key] = weight
    expected = [
        [0.35, 0.55, 0.0, 0.1, 0.0],  # mean of [.5, .4, 0, .1, 0] and [.2, .7, 0, .1, 0]
        [0.5, 0.3, 0.0, 0.0, 0.2],
        [0.5, 0.3, 0.0, 0.0, 0.2],
    ]
    np.testing.assert_allclose(dense, expected, atol=1e-6)


# --- against the definition and the reference path ------------------------------------------------------


def _owners(plan, n_tokens: int) -> list[int]:
    """The column each piece counts for as a key, by the module docstring's rule, with loops."""
    tokens = np.split(np.asarray(plan.alignment.dataXd), np.cumsum(plan.alignment.lengths)[:-1])
    n_pieces = len(plan.ids)
    owner = [None] * n_pieces
    for t, pieces in enumerate(tokens):
        for p in pieces:
            owner[p] = t if owner[p] is None else owner[p]
    owner[0] = n_tokens
    for p in [n_pieces - 1] + ([plan.prefix - 2, plan.prefix - 1] if plan.prefix > 1 else []):
        owner[p] = n_tokens + 1
    for p in range(n_pieces):
        if owner[p] is None:
            owner[p] = next(owner[r] for r in range(p + 1, n_pieces) if owner[r] is not None)
    return owner


def _pool_by_hand(piece_rows: np.ndarray, plan, n_tokens: int) -> np.ndarray:
    """(n_tokens, n_tokens + 2) from (n_pieces, n_pieces) piece rows: a token's row is the mean of
    its pieces' rows, each key counted for its owner."""
    owner = _owners(plan, n_tokens)
    tokens = np.split(np.asarray(plan.alignment.dataXd), np.cumsum(plan.alignment.lengths)[:-1])
    out = np.zeros((n_tokens, n_tokens + 2))
    for t, pieces in enumerate(tokens):
        for p in pieces:
            for key in range(len(owner)):
                out[t, owner[key]] += piece_rows[p, key] / len(pieces)
    return out


def _definition_rows(layer_module, hidden: torch.Tensor, is_global: np.ndarray, one_sided: int) -> np.ndarray:
    """(heads, seq, seq) probabilities from the definition: a local query sees the non-global keys
    within ``one_sided`` and every global key; a global query, with the global projections, all."""
    heads = layer_module.num_heads
    seq, hidden_size = hidden.shape
    d = hidden_size // heads

    def split(x):
        return x.view(seq, heads, d).transpose(0, 1)

    q = split(layer_module.query(hidden)) / math.sqrt(d)
    k = split(layer_module.key(hidden))
    qg = split(layer_module.query_global(hidden)) / math.sqrt(d)
    kg = split(layer_module.key_global(hidden))
    glob = torch.from_numpy(is_global)
    position = torch.arange(seq)
    band = (position[:, None] - position[None, :]).abs() <= one_sided
    allowed = (band & ~glob[None, :]) | glob[None, :]
    local = (q @ k.transpose(1, 2)).masked_fill(~allowed, float("-inf")).softmax(-1)
    global_rows = (qg @ kg.transpose(1, 2)).softmax(-1)
    return torch.where(glob[None, :, None], global_rows, local).numpy()


@pytest.mark.parametrize("layer,head", [(0, None), (1, 2)])
def test_a_one_window_doc_equals_the_definition(nlp, layer, head):
    doc = _doc(nlp, 35)
    encoder = nlp.get_pipe("longformer_encoder").model
    model = torch_model_of(encoder).eval()
    plan = plan_doc(
        doc, tokenizer_of(encoder), getter=encoder.attrs["global_attention"], window=126, overlap=32
    )
    assert len(plan.windows) == 1 and plan.global_mask.sum() > 1
    ids = torch.from_numpy(plan.ids)[None]
    with torch.no_grad():
        out = model(
            input_ids=ids,
            global_attention_mask=torch.from_numpy(plan.global_mask).long()[None],
            output_hidden_states=True,
        )
        probs = _definition_rows(
            model.layers[layer].attention,
            out.hidden_states[layer][0],
            plan.global_mask,
            model.config.attention_window[layer] // 2,
        )
    piece_rows = probs.mean(0) if head is None else probs[head]
    amap = attention_map(nlp, doc, layer=layer, head=head)
    np.testing.assert_allclose(amap.to_dense(), _pool_by_hand(piece_rows, plan, len(doc)), atol=1e-5)
    assert amap.is_global(3) and amap.is_global(4) and not amap.is_global(10)


def test_a_long_doc_agrees_with_the_reference_path_window_by_window(nlp, tiny_checkpoint):
    """Three windows; each token's row is its owning window's, in transformers' layout turned
    absolute by hand, from a separate reference-path model."""
    doc = _doc(nlp, 200, topic=slice(120, 122))
    encoder = nlp.get_pipe("longformer_encoder").model
    plan = plan_doc(
        doc, tokenizer_of(encoder), getter=encoder.attrs["global_attention"], window=126, overlap=32
    )
    assert len(plan.windows) >= 3
    reference = LongformerModel.from_pretrained(tiny_checkpoint, attn_implementation="reference").eval()
    layer, one_sided = 1, reference.config.attention_window[1] // 2
    n = len(plan.ids)
    piece_rows = np.zeros((n, n))
    cls_rows = []
    for w, (pieces, rows) in enumerate(plan.owned):
        ids, glob = plan.window_inputs(w)
        start, end = plan.windows[w]
        doc_piece = [*range(plan.prefix), *range(start, end), n - 1]
        with torch.no_grad():
            out = reference(
                input_ids=torch.from_numpy(ids)[None],
                global_attention_mask=torch.from_numpy(glob).long()[None],
                output_attentions=True,
            )
        local = out.attentions[layer][0].mean(0).numpy()
        global_index = np.flatnonzero(glob)
        dense = np.zeros((len(ids), len(ids)))
        for i in range(len(ids)):
            for g, key in enumerate(global_index):
                dense[i, key] += local[i, g]
            for j in range(2 * one_sided + 1):
                key = i - one_sided + j
                if 0 <= key < len(ids):
                    dense[i, key] += local[i, len(global_index) + j]
        if out.global_attentions is not None:
            full = out.global_attentions[layer][0].mean(0).numpy()  # (seq, x)
            for g, query in enumerate(global_index):
                dense[query] = full[:, g]
        window_rows = np.zeros((len(ids), n))
        window_rows[:, doc_piece] = dense
        cls_rows.append(window_rows[0])
        piece_rows[pieces] = window_rows[rows]
    amap = attention_map(nlp, doc, layer=-1)
    np.testing.assert_allclose(amap.to_dense(), _pool_by_hand(piece_rows, plan, len(doc)), atol=1e-5)
    owner = _owners(plan, len(doc))
    expected = [np.bincount(owner, weights=row, minlength=len(doc) + 2) for row in cls_rows]
    np.testing.assert_allclose(amap.cls_rows, expected, atol=1e-5)
    np.testing.assert_allclose(amap.cls_rows.sum(1), 1.0, atol=1e-5)


def test_every_row_sums_to_one_over_the_tokens_and_the_specials(nlp):
    doc = _doc(nlp, 200, topic=slice(120, 122))
    amap = attention_map(nlp, doc, layer=0, head=1)
    dense = amap.to_dense()
    np.testing.assert_allclose(dense.sum(1), 1.0, atol=1e-5)
    for token in amap.global_tokens:  # a global row covers every token of its window
        assert np.count_nonzero(dense[token, : len(doc)]) > 40
    near, far = dense[127, : len(doc)], dense[10, : len(doc)]
    # a local row: its neighbours and the global tokens of its window (<s>, and the topic there)
    assert np.count_nonzero(near) < 20 and near[120] > 0 and near[121] > 0 and near[100] == 0
    assert np.count_nonzero(far) < 20 and far[120] == 0 and dense[10, len(doc)] > 0
    assert amap.row(10).tolist() == dense[10].tolist() and amap.row(-1).tolist() == dense[-1].tolist()


def test_a_qa_doc_counts_its_separators_as_specials(tiny_checkpoint):
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "longformer_qa", config={"model": {"encoder": {"name": str(tiny_checkpoint), "window_overlap": 32}}}
    )
    nlp.initialize()
    doc = nlp(make_qa_doc(nlp, "What is the code for bravo?", synthetic_text(150, seed=2)))
    amap = attention_map(nlp, doc, layer=1)
    question = range(doc.spans["question"][0].start, doc.spans["question"][0].end)
    assert set(question) <= set(amap.global_tokens.tolist())
    dense = amap.to_dense()
    np.testing.assert_allclose(dense.sum(1), 1.0, atol=1e-5)
    assert dense[:, len(doc) + 1].max() > 0  # the </s></s> separators and the window ends


# --- attaching, plotting, errors ------------------------------------------------------------------------


def test_attach_survives_serialization_and_plots(nlp, tmp_path):
    pytest.importorskip("matplotlib")
    doc = _doc(nlp, 35)
    amap = attention_map(nlp, doc, layer=1, head=0, attach=True)
    attention_map(nlp, doc, layer=1, head=0, attach=True)  # replaces, does not pile up
    assert len(doc._.longformer_attention) == 1
    again = Doc(nlp.vocab).from_bytes(doc.to_bytes())
    restored = again._.longformer_attention[0]
    assert isinstance(restored, AttentionMap) and restored.layer == 1 and restored.head == 0
    np.testing.assert_array_equal(restored.to_dense(), amap.to_dense())
    for target in (again[3:5], "<s>"):
        path = plot_attention(again, target, layer=-1, head=0, path=tmp_path / "map.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    figure = spacy_longformer.plot_attention(doc, 7, layer=0, nlp=nlp)  # computed on request
    assert len(figure.axes) == 2 and len(doc._.longformer_attention) == 2


@pytest.mark.parametrize(
    "case,code",
    [("layer", "LF175"), ("head", "LF175"), ("no-encoder", "LF174"), ("not-attached", "LF177")]
    + [("token", "LF176"), ("other-doc", "LF176")],
)
def test_errors_name_the_fix(nlp, case, code):
    if case in ("not-attached", "token", "other-doc"):
        pytest.importorskip("matplotlib")  # plot_attention asks for it first (LF178)
    doc = _doc(nlp, 40)
    calls = {
        "layer": lambda: attention_map(nlp, doc, layer=2),
        "head": lambda: attention_map(nlp, doc, layer=0, head=-5),
        "no-encoder": lambda: attention_map(spacy.blank("en"), doc),
        "not-attached": lambda: plot_attention(doc, doc[0], layer=0),
        "token": lambda: plot_attention(doc, len(doc), layer=0, nlp=nlp),
        "other-doc": lambda: plot_attention(doc, _doc(nlp, 40)[0], layer=0, nlp=nlp),
    }
    with pytest.raises((ValueError, IndexError), match=rf"\[{code}\]"):
        calls[case]()
