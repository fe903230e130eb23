"""The encoder's forward and backward pass over a document read as several windows, against
transformers run on each window alone.

Oracle: every window ``<s> pieces[a:b] </s>`` through ``transformers.LongformerModel``; a piece's
state is its state in the window that owns it (the overlap of two windows split at its midpoint,
the rule written out again in ``owner``), and a gradient on it must reach that window's row and no
other; a gradient on window w's ``<s>`` state (``window_states[w]``) must reach row 0 of window w.
Expected parameter gradients are transformers' ``backward`` of ``sum_w (out_w * G_w).sum()``.
Dropout is off on both sides (``no_dropout_``); the checkpoint is perturbed so that every path
shows in the gradients.
"""

import numpy as np
import pytest
import spacy
import torch
import transformers

from spacy_longformer.ml.encoder_model import torch_model_of
from spacy_longformer.model.hf_checkpoint import _ENCODER_BACKWARD, _translate
from spacy_longformer.random_checkpoint import synthetic_text

from ..model.oracle import no_dropout_

WINDOW, OVERLAP = 16, 6
TEXTS = [synthetic_text(14, seed=21), synthetic_text(12, seed=22)]  # 3 and 2 windows


@pytest.fixture(scope="module")
def hf(perturbed_checkpoint):
    model = transformers.LongformerModel.from_pretrained(perturbed_checkpoint, add_pooling_layer=False)
    return no_dropout_(model).eval()


@pytest.fixture(scope="module")
def encoder(perturbed_checkpoint):
    """Windows of 16 pieces, 6 apart; a forward pass of at most 40 padded pieces, so the two docs'
    windows run in several groups."""
    nlp = spacy.blank("en")
    config = {
        "name": str(perturbed_checkpoint),
        "max_window_pieces": WINDOW,
        "window_overlap": OVERLAP,
        "max_batch_pieces": 40,
    }
    pipe = nlp.add_pipe("longformer_encoder", config={"model": config})
    nlp.initialize()
    no_dropout_(torch_model_of(pipe.model))
    return nlp, pipe.model


def owner(piece: int, windows: list[tuple[int, int]], n_pieces: int) -> int:
    """The window a piece takes its state from: ``<s>`` the first, ``</s>`` the last; a piece two
    windows share goes to the later one when it is further from that one's start than from the
    earlier one's end (ties stay with the earlier)."""
    if piece == 0:
        return 0
    if piece == n_pieces - 1:
        return len(windows) - 1
    holding = [w for w, (a, b) in enumerate(windows) if a <= piece < b]
    assert 1 <= len(holding) <= 2
    if len(holding) == 1:
        return holding[0]
    earlier, later = holding
    return later if piece - windows[later][0] > windows[earlier][1] - 1 - piece else earlier


def row_in(piece: int, window: tuple[int, int], n_pieces: int) -> int:
    """A piece's row in its window's output ``<s> pieces[a:b] </s>``."""
    if piece == 0:
        return 0
    if piece == n_pieces - 1:
        return window[1] - window[0] + 1
    return piece - window[0] + 1


def _window_inputs(data, window):
    a, b = window
    ids = torch.tensor([[int(data.input_ids[0]), *data.input_ids[a:b].tolist(), int(data.input_ids[-1])]])
    glob = torch.tensor([[int(data.global_attention_mask[0]), *data.global_attention_mask[a:b].tolist(), 0]])
    return ids, glob


def _hf_gradients(hf, data, d_rows):
    """transformers' parameter gradients for ``d_rows``: {window: {row: gradient}}."""
    hf.zero_grad(set_to_none=True)
    total = 0
    for w, rows in d_rows.items():
        ids, glob = _window_inputs(data, data.windows[w])
        out = hf(ids, global_attention_mask=glob).last_hidden_state[0]
        weights = torch.zeros_like(out)
        for row, grad in rows.items():
            weights[row] += torch.as_tensor(grad)
        total = total + (out * weights).sum()
    total.backward()
    return {name: p.grad.clone() for name, p in hf.named_parameters() if p.grad is not None}


def _our_gradients(encoder, docs, d_outputs):
    nlp, model = encoder
    torch_model = torch_model_of(model)
    torch_model.zero_grad(set_to_none=True)
    _, backprop = model.begin_update(docs)
    backprop(d_outputs)
    return {
        _translate(name, _ENCODER_BACKWARD): p.grad.clone()
        for name, p in torch_model.named_parameters()
        if p.grad is not None
    }


def _assert_same_gradients(ours, theirs):
    """A parameter one side gives no gradient (our fast path folds the global key bias away: it
    adds the same score to every key) must have none on the other either."""
    assert len(ours) > 30 and set(ours) <= set(theirs)
    scale = max(float(g.abs().max()) for g in theirs.values())
    for name, grad in theirs.items():
        got = ours.get(name, torch.zeros_like(grad))
        torch.testing.assert_close(got, grad, rtol=1e-4, atol=1e-5 * scale, msg=name)


def _largest_difference(ours, theirs):
    return max(float((ours.get(k, torch.zeros_like(g)) - g).abs().max()) for k, g in theirs.items())


def _plans(encoder):
    nlp, model = encoder
    docs = [nlp.make_doc(text) for text in TEXTS]
    return docs, model.predict(docs)


def test_max_window_pieces_cuts_windows_that_transformers_reproduces(encoder, hf, perturbed_checkpoint):
    """Each window holds at most ``max_window_pieces`` pieces (plus ``<s>`` and ``</s>``); every
    piece's state, and each window's ``<s>`` state, is transformers' state in its window."""
    tokenizer = transformers.LongformerTokenizerFast.from_pretrained(perturbed_checkpoint)
    docs, datas = _plans(encoder)
    for doc, data in zip(docs, datas, strict=True):
        n = data.n_pieces
        assert data.input_ids.tolist() == tokenizer(doc.text)["input_ids"]
        assert len(data.windows) >= 2 and n - 2 > WINDOW
        assert data.windows[0][0] == 1 and data.windows[-1][1] == n - 1
        outputs = []
        for w, window in enumerate(data.windows):
            assert window[1] - window[0] <= WINDOW
            if w:
                assert data.windows[w - 1][0] < window[0] <= data.windows[w - 1][1]
            ids, glob = _window_inputs(data, window)
            with torch.no_grad():
                outputs.append(hf(ids, global_attention_mask=glob).last_hidden_state[0].numpy())
            np.testing.assert_allclose(data.window_states[w], outputs[w][0], atol=1e-4)
        for piece in range(n):
            w = owner(piece, data.windows, n)
            expected = outputs[w][row_in(piece, data.windows[w], n)]
            np.testing.assert_allclose(data.last_hidden_state[piece], expected, atol=1e-4)


def test_piece_and_window_gradients_reach_the_windows_transformers_would(encoder, hf):
    """A random gradient on every piece's state and on every window's ``<s>`` state, over two docs
    whose windows run in several groups: the encoder's parameter gradients are transformers'."""
    docs, datas = _plans(encoder)
    rng = np.random.default_rng(0)
    d_outputs, expected = [], None
    for data in datas:
        d_states = rng.standard_normal(data.last_hidden_state.shape).astype("f")
        d_windows = rng.standard_normal(data.window_states.shape).astype("f")
        d_outputs.append((d_states, d_windows))
        d_rows = {w: {0: d_windows[w]} for w in range(len(data.windows))}
        for piece in range(data.n_pieces):
            w = owner(piece, data.windows, data.n_pieces)
            row = row_in(piece, data.windows[w], data.n_pieces)
            d_rows[w][row] = d_rows[w].get(row, 0) + d_states[piece]
        grads = _hf_gradients(hf, data, d_rows)
        expected = grads if expected is None else {k: expected[k] + grads[k] for k in grads}
    _assert_same_gradients(_our_gradients(encoder, docs, d_outputs), expected)


def _one_piece_cases(encoder):
    """Pieces two windows share, on both sides of the midpoint."""
    _, datas = _plans(encoder)
    data = datas[0]
    a, b = data.windows[1][0], data.windows[0][1]
    assert b - a >= 4
    return [a, (a + b) // 2 - 1, (a + b) // 2, b - 1]


@pytest.mark.parametrize("which", range(4))
def test_a_gradient_on_one_shared_piece_reaches_only_its_owner(encoder, hf, which):
    docs, datas = _plans(encoder)
    data = datas[0]
    piece = _one_piece_cases(encoder)[which]
    rng = np.random.default_rng(which)
    grad = rng.standard_normal(data.width).astype("f")
    d_states = np.zeros_like(data.last_hidden_state)
    d_states[piece] = grad
    d_outputs = [d_states] + [np.zeros_like(d.last_hidden_state) for d in datas[1:]]
    ours = _our_gradients(encoder, docs, d_outputs)
    w = owner(piece, data.windows, data.n_pieces)
    _assert_same_gradients(
        ours, _hf_gradients(hf, data, {w: {row_in(piece, data.windows[w], data.n_pieces): grad}})
    )
    other = 1 - w
    wrong = _hf_gradients(hf, data, {other: {row_in(piece, data.windows[other], data.n_pieces): grad}})
    assert _largest_difference(ours, wrong) > 1e-3  # the other window gives other gradients


@pytest.mark.parametrize("window", [0, 1, -1])
def test_a_window_state_gradient_lands_on_row_0_of_its_window(encoder, hf, window):
    docs, datas = _plans(encoder)
    data = datas[0]
    w = range(len(data.windows))[window]
    grad = np.random.default_rng(w).standard_normal(data.width).astype("f")
    d_windows = np.zeros_like(data.window_states)
    d_windows[w] = grad
    d_outputs = [(np.zeros_like(data.last_hidden_state), d_windows)]
    d_outputs += [np.zeros_like(d.last_hidden_state) for d in datas[1:]]
    ours = _our_gradients(encoder, docs, d_outputs)
    _assert_same_gradients(ours, _hf_gradients(hf, data, {w: {0: grad}}))
    wrong = _hf_gradients(hf, data, {w: {1: grad}})
    assert _largest_difference(ours, wrong) > 1e-3
