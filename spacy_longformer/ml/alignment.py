"""Word pieces <-> spaCy tokens, from character offsets, and document windows cut on token edges."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from thinc.types import Ragged


def align_tokens(piece_offsets: np.ndarray, token_spans: np.ndarray) -> Ragged:
    """For each token, the indices of the pieces that overlap its characters.

    piece_offsets: (n_pieces, 2) character spans of the pieces, monotonic (specials excluded by the
    caller, so indices are into that array); token_spans: (n_tokens, 2). Returns a Ragged with one
    row of piece indices per token. A token no piece overlaps (whitespace, which byte-level BPE
    gives empty offsets) gets the first piece ending after its start, else the last piece, so
    every token has at least one piece whenever there are pieces.
    """
    n_tokens = len(token_spans)
    if n_tokens == 0:
        return Ragged(np.zeros((0,), dtype="i"), np.zeros((0,), dtype="i"))
    if len(piece_offsets) == 0:
        raise ValueError("align_tokens needs at least one piece for a non-empty doc")
    starts, ends = piece_offsets[:, 0], piece_offsets[:, 1]
    # Pieces overlapping [t0, t1): end > t0 and start < t1; offsets are sorted, so two searches.
    first = np.searchsorted(ends, token_spans[:, 0], side="right")
    last = np.searchsorted(starts, token_spans[:, 1], side="left") - 1
    empty = last < first
    fallback = np.minimum(first, len(piece_offsets) - 1)
    first = np.where(empty, fallback, first)
    last = np.where(empty, fallback, last)
    lengths = (last - first + 1).astype("i")
    indices = np.concatenate([np.arange(a, b + 1) for a, b in zip(first, last, strict=True)]).astype("i")
    return Ragged(indices, lengths)


def piece_bounds(alignment: Ragged) -> tuple[np.ndarray, np.ndarray]:
    """First and last piece of each token (both nondecreasing over the tokens)."""
    lengths = np.asarray(alignment.lengths)
    pieces = np.asarray(alignment.dataXd)
    ends = np.cumsum(lengths)
    return pieces[ends - lengths], pieces[ends - 1]


def cut_points(alignment: Ragged, n_pieces: int) -> np.ndarray:
    """Piece indices where a window may start or end without splitting a token: (n_pieces + 1,) bool."""
    ok = np.ones(n_pieces + 1, dtype=bool)
    if len(alignment.lengths):
        starts = np.cumsum(alignment.lengths) - alignment.lengths
        data = alignment.dataXd
        for start, length in zip(starts, alignment.lengths, strict=True):
            if length > 1:
                lo, hi = int(data[start]), int(data[start + length - 1])
                ok[lo + 1 : hi + 1] = False
    return ok


def plan_windows(ok: np.ndarray, *, size: int, overlap: int) -> list[tuple[int, int]]:
    """Overlapping windows [a, b) over n pieces, at most ``size`` long, cut where ``ok``.

    Each window ends at the last allowed cut within ``size``; the next starts at the first allowed
    cut at or after ``end - overlap`` (but always moves forward). A token longer than a window is
    cut inside: never an error.
    """
    n = len(ok) - 1
    if n <= size:
        return [(0, n)]
    windows: list[tuple[int, int]] = []
    start = 0
    while True:
        limit = min(n, start + size)
        end = limit
        if limit < n:
            allowed = np.flatnonzero(ok[start + 1 : limit + 1])
            end = start + 1 + int(allowed[-1]) if len(allowed) else limit
        windows.append((start, end))
        if end >= n:
            return windows
        candidates = np.flatnonzero(ok[max(start + 1, end - overlap) : end + 1])
        start = max(start + 1, end - overlap) + int(candidates[0]) if len(candidates) else end


def window_owners(windows: Sequence[tuple[int, int]], n: int) -> np.ndarray:
    """Which window each piece takes its state from: (n,) window index.

    Best context: where two windows overlap, each piece goes to the window where it is further
    from an edge, i.e. the overlap is split at its midpoint, so no piece is read near a window's
    cut, where it saw the least context.
    """
    owners = np.zeros(n, dtype="i")
    for i in range(1, len(windows)):
        previous_end = windows[i - 1][1]
        start = windows[i][0]
        split = (start + previous_end + 1) // 2 if start < previous_end else start
        owners[split:] = i
    return owners
