"""Planning one Doc for the encoder: its pieces, their alignment to tokens, its global pieces and
the windows it runs as.

The whole text is tokenized once. A doc longer than one window is cut into overlapping windows of
pieces on token edges, each run as ``prefix + window + </s>``. The prefix is ``<s>``, or for a text
pair (a QA doc's question and context, read as ``<s> question </s></s> context </s>`` as
transformers' ``tokenizer(question, context)`` reads it) ``<s> question </s></s>``, which every window
repeats. Nothing here runs a model.
"""

from dataclasses import dataclass

import numpy as np
from spacy.tokens import Doc
from thinc.types import Ragged

from ..errors import Errors
from ..qa_docs import context_start_char, question_span
from ..tokenization import LongformerTokenizer
from .alignment import align_tokens, cut_points, plan_windows, window_owners
from .global_attention import GlobalAttentionGetter, global_piece_mask


@dataclass
class DocPlan:
    ids: np.ndarray  # (n_pieces,) <s> pieces </s>, or <s> question </s></s> context </s>
    global_mask: np.ndarray  # (n_pieces,) bool
    alignment: Ragged
    prefix: int  # leading pieces every window repeats: <s>, or <s> question </s></s>
    windows: list[tuple[int, int]]  # ranges of the pieces after the prefix, indices into ids
    # per window: the doc pieces it owns and their rows in the window's output (<s> at row 0)
    owned: list[tuple[np.ndarray, np.ndarray]]

    def window_inputs(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Ids and global mask of window ``index``: the prefix, its pieces, ``</s>``."""
        start, end = self.windows[index]
        ids = np.concatenate([self.ids[: self.prefix], self.ids[start:end], self.ids[-1:]])
        glob = np.concatenate([self.global_mask[: self.prefix], self.global_mask[start:end], [False]])
        return ids, glob

    def window_length(self, index: int) -> int:
        start, end = self.windows[index]
        return end - start + self.prefix + 1


def plan_doc(
    doc: Doc,
    tokenizer: LongformerTokenizer,
    *,
    getter: GlobalAttentionGetter,
    window: int,
    overlap: int,
    pair_key: str | None = None,
) -> DocPlan:
    """Pieces, alignment, global pieces and windows for one doc.

    ``pair_key``: read the doc as a text pair, the span of ``doc.spans[pair_key]`` (a QA doc's
    question) first and the text after it (see ``qa_docs``) second, the first repeated in every
    window.
    """
    if pair_key is None:
        encoded = tokenizer.encode(doc.text)
        prefix = 1
        alignment = rest = _align(encoded.offsets[1:-1], doc, 0, len(doc), char_shift=0, piece_shift=1)
    else:
        first = question_span(doc, pair_key)
        second_char = context_start_char(doc, pair_key)
        encoded = tokenizer.encode_pair(doc.text[: first.end_char], doc.text[second_char:])
        n_first = sum(1 for s in encoded.sequence_ids if s == 0)
        prefix = n_first + 3
        if window + 1 - prefix < 2:
            raise ValueError(Errors.LF130.format(n_pieces=n_first, window=window))
        asked = _align(encoded.offsets[1 : 1 + n_first], doc, 0, first.end, char_shift=0, piece_shift=1)
        rest = _align(
            encoded.offsets[prefix:-1], doc, first.end, len(doc), char_shift=second_char, piece_shift=prefix
        )
        alignment = Ragged(
            np.concatenate([np.asarray(asked.dataXd), np.asarray(rest.dataXd)]).astype("i"),
            np.concatenate([np.asarray(asked.lengths), np.asarray(rest.lengths)]).astype("i"),
        )
    ids = np.asarray(encoded.ids, dtype="int64")
    global_mask = global_piece_mask(getter(doc), alignment, n_pieces=len(ids), n_tokens=len(doc))
    # Windows cut the pieces after the prefix (the whole text, or the second text), on token edges.
    n_rest = len(ids) - prefix - 1
    windows = [
        (a + prefix, b + prefix)
        for a, b in plan_windows(
            cut_points(Ragged(np.asarray(rest.dataXd) - prefix, rest.lengths), n_rest),
            size=window + 1 - prefix,
            overlap=min(overlap, (window + 1 - prefix) // 2),
        )
    ]
    owners = np.zeros(len(ids), dtype="i")
    owners[prefix:-1] = window_owners([(a - prefix, b - prefix) for a, b in windows], n_rest)
    owners[-1] = len(windows) - 1
    owned = []
    for w, (start, _) in enumerate(windows):
        # The prefix lands on the first rows of the first window, </s> on the last row of the last.
        pieces = np.flatnonzero(owners == w)
        owned.append((pieces, pieces - start + prefix))
    return DocPlan(ids, global_mask, alignment, prefix, windows, owned)


def _align(
    offsets: list[tuple[int, int]], doc: Doc, start: int, end: int, *, char_shift: int, piece_shift: int
) -> Ragged:
    """Pieces of tokens ``doc[start:end]``, from piece offsets into a text starting at ``char_shift``."""
    piece_offsets = np.asarray(offsets, dtype="int64").reshape(-1, 2)
    spans = np.asarray(
        [(t.idx - char_shift, t.idx - char_shift + len(t.text)) for t in doc[start:end]], dtype="int64"
    ).reshape(-1, 2)
    if len(piece_offsets) == 0 and len(spans):
        # Whitespace-only text the tokenizer gives no pieces: its tokens take the next piece.
        return Ragged(np.full(len(spans), piece_shift, dtype="i"), np.ones(len(spans), dtype="i"))
    aligned = align_tokens(piece_offsets, spans)
    return Ragged(np.asarray(aligned.dataXd) + piece_shift, aligned.lengths)
