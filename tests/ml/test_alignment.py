"""Piece <-> token alignment and windows cut on token edges.

Expectations are written by hand, or computed by ``token_pieces`` (the rule, as loops, in tests/model/oracle.py) from
transformers' own tokenizer offsets (``LongformerTokenizerFast(..., return_offsets_mapping=True)``).
"""

import numpy as np
import pytest
import spacy
import transformers

from spacy_longformer.ml.alignment import align_tokens, cut_points, plan_windows, window_owners

from ..model.oracle import token_pieces


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


def test_whitespace_pieces_inside_a_whitespace_token_are_its_pieces():
    # "a  \n\nb": whitespace pieces have empty offsets at their end
    pieces = np.array([[0, 1], [3, 3], [5, 5], [5, 6]])
    tokens = np.array([[0, 1], [2, 5], [5, 6]])
    # The empty piece at 3 lies inside the whitespace token [2, 5), so it is that token's piece.
    assert _rows(align_tokens(pieces, tokens)) == [[0], [1], [3]]


def test_a_double_space_borrows_the_next_words_piece():
    # "a  b" as byte-level BPE reads it: a | Ġ (empty, at 2) | Ġb; the token " " is [2, 3) and
    # meets no piece: it takes Ġb, the first piece ending after its start, not the Ġ before it.
    pieces = np.array([[0, 1], [2, 2], [3, 4]])
    tokens = np.array([[0, 1], [2, 3], [3, 4]])
    assert _rows(align_tokens(pieces, tokens)) == [[0], [2], [2]]


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


def test_owners_split_an_odd_overlap_and_several_windows_by_hand():
    # Overlap 4..9 of the first two windows: 4, 5, 6 are nearer window 0's inside; 7, 8, 9
    # window 1's. Overlap 12..13 of the last two: 12 to window 1, 13 to window 2.
    owners = window_owners([(0, 10), (4, 14), (12, 20)], 20)
    assert owners.tolist() == [0] * 7 + [1] * 6 + [2] * 7
    # Windows that only touch split where they touch.
    assert window_owners([(0, 8), (8, 16)], 16).tolist() == [0] * 8 + [1] * 8
    # A tie (piece 2 is one piece from window 0's end and from window 1's start) stays with the
    # earlier window; windows that share no piece hand over at the start of the later one.
    owners = window_owners([(0, 4), (1, 9), (9, 17), (14, 20)], 20)
    assert owners.tolist() == [0] * 3 + [1] * 6 + [2] * 7 + [3] * 4


@pytest.mark.parametrize(
    "forbidden,overlap,expected",
    [
        ([], 2, [(0, 8), (6, 14), (12, 20)]),
        # 7 and 8 are inside tokens: the first window ends at 6; the next starts at 6 - 2.
        ([7, 8], 2, [(0, 6), (4, 12), (10, 18), (16, 20)]),
        # 5..8 forbidden: (0, 4) is as far as a window from 0 may go; the next starts 3 back, at
        # 1, and reaches 9; no cut in 6..8 lets the one after start before 9.
        ([5, 6, 7, 8], 3, [(0, 4), (1, 9), (9, 17), (14, 20)]),
    ],
)
def test_plan_windows_by_hand(forbidden, overlap, expected):
    ok = np.ones(21, dtype=bool)
    ok[forbidden] = False
    assert plan_windows(ok, size=8, overlap=overlap) == expected


WHITESPACE_TEXTS = [
    "The  lease\n\nwas\tsigned \t by  Acme.\n",
    "  leading spaces and a trailing double space  ",
    "x \n y\t\tz\n\n\n  w and  v",
    "naïve café  東京\t🙂👍🏽 résumé\n  tabs and  spaces",
]


@pytest.fixture(scope="module")
def hf_tokenizer(tiny_checkpoint):
    return transformers.LongformerTokenizerFast.from_pretrained(tiny_checkpoint)


@pytest.mark.parametrize("text", WHITESPACE_TEXTS)
def test_alignment_of_transformers_offsets_equals_the_rule(hf_tokenizer, text):
    offsets = hf_tokenizer(text, return_offsets_mapping=True)["offset_mapping"][1:-1]
    doc = spacy.blank("en").make_doc(text)
    spans = [(t.idx, t.idx + len(t.text)) for t in doc]
    expected = token_pieces(offsets, spans)
    assert _rows(align_tokens(np.asarray(offsets), np.asarray(spans))) == expected
    # The texts exercise the fallback: some whitespace token meets no piece at all.
    assert any(not any(a < e and b > s for a, b in offsets) for s, e in spans)
