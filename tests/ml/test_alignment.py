"""Piece <-> token alignment and windows cut on token edges."""

import numpy as np
import pytest

from spacy_longformer.ml.alignment import align_tokens, cut_points, plan_windows, window_owners


def _rows(ragged):
    data, lengths = np.asarray(ragged.dataXd), np.asarray(ragged.lengths)
    starts = np.cumsum(lengths) - lengths
    return [data[s : s + n].tolist() for s, n in zip(starts, lengths, strict=True)]


def test_one_piece_per_token():
    pieces = np.array([[0, 5], [6, 11]])
    tokens = np.array([[0, 5], [6, 11]])
    assert _rows(align_tokens(pieces, tokens)) == [[0], [1]]


def test_token_split_into_pieces_and_piece_spanning_tokens():
    # "unhappy don't": pieces un|happy|Ġdon|'t ; tokens unhappy | do | n't
    pieces = np.array([[0, 2], [2, 7], [8, 11], [11, 13]])
    tokens = np.array([[0, 7], [8, 10], [10, 13]])
    assert _rows(align_tokens(pieces, tokens)) == [[0, 1], [2], [2, 3]]


def test_whitespace_token_without_pieces_gets_the_next_piece():
    # "a  \n\nb": whitespace pieces have empty offsets at their end
    pieces = np.array([[0, 1], [3, 3], [5, 5], [5, 6]])
    tokens = np.array([[0, 1], [2, 5], [5, 6]])
    rows = _rows(align_tokens(pieces, tokens))
    assert rows[0] == [0] and rows[2] == [3]
    assert rows[1] and all(0 <= i < 4 for i in rows[1])


def test_every_token_gets_a_piece_even_past_the_last_one():
    pieces = np.array([[0, 3]])
    tokens = np.array([[0, 3], [4, 5]])
    assert _rows(align_tokens(pieces, tokens)) == [[0], [0]]


def test_no_tokens():
    assert len(align_tokens(np.zeros((0, 2), dtype=int), np.zeros((0, 2), dtype=int)).lengths) == 0


def test_cut_points_never_split_a_token():
    pieces = np.array([[0, 2], [2, 4], [4, 6], [7, 9], [9, 11]])
    tokens = np.array([[0, 6], [7, 11]])
    ok = cut_points(align_tokens(pieces, tokens), 5)
    assert ok.tolist() == [True, False, False, True, False, True]


@pytest.mark.parametrize("n,size,overlap", [(10, 10, 2), (100, 16, 4), (101, 16, 0), (57, 8, 3)])
def test_windows_cover_everything_and_respect_size(n, size, overlap):
    ok = np.ones(n + 1, dtype=bool)
    windows = plan_windows(ok, size=size, overlap=overlap)
    assert windows[0][0] == 0 and windows[-1][1] == n
    for (a, b), (c, d) in zip(windows, windows[1:], strict=False):
        assert b - a <= size and a < c <= b and d > b
        assert b - c == min(overlap, b - a - 1) or overlap == 0
    owners = window_owners(windows, n)
    for i, w in enumerate(owners):
        a, b = windows[w]
        assert a <= i < b


def test_windows_cut_on_allowed_points_only():
    rng = np.random.default_rng(0)
    ok = rng.random(201) < 0.3
    ok[0] = ok[-1] = True
    windows = plan_windows(ok, size=20, overlap=5)
    for a, b in windows:
        assert ok[a] and ok[b] and b - a <= 20


def test_a_token_longer_than_a_window_is_cut_inside():
    ok = np.zeros(51, dtype=bool)
    ok[0] = ok[-1] = True
    windows = plan_windows(ok, size=16, overlap=4)
    assert windows[-1][1] == 50 and all(b - a <= 16 for a, b in windows)


def test_owners_split_overlaps_at_their_midpoint():
    owners = window_owners([(0, 10), (6, 16)], 16)
    assert owners.tolist() == [0] * 8 + [1] * 8
