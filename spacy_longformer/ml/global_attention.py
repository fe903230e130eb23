"""Which tokens get global attention, chosen from the Doc by registered getters.

A getter is configured in the encoder's (or a task component's) config block::

    [components.longformer.model.global_attention]
    @misc = "spacy-longformer.global_attention.v1"
    cls = true            # the <s> of every window (what sequence classification heads expect)
    spans_key = "topics"  # every token of doc.spans["topics"]; an absent group means none
    sentence_starts = false
    entities = false

Pick ``cls`` for document-level tasks, a span group for a question or for headings, sentence
starts for long documents whose sentences should share information directly. A global token
attends to, and is attended by, every token of its window, so keep their number small (tens).
"""

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version

import confection
import numpy as np
from spacy.tokens import Doc
from spacy.util import registry
from thinc.types import Ragged

from ..errors import Errors
from .alignment import piece_bounds


@dataclass
class GlobalAttention:
    """A getter's choice for one doc: ``cls`` puts each window's ``<s>`` global; ``tokens`` holds
    the indices of the doc's global tokens (every piece of such a token is global)."""

    cls: bool
    tokens: np.ndarray


GlobalAttentionGetter = Callable[[Doc], GlobalAttention]


@dataclass(frozen=True)
class GlobalAttentionChoice:
    """The getter ``spacy-longformer.global_attention.v1`` makes: a plain object rather than a
    closure, so pipelines pickle (``nlp.pipe(n_process=...)`` under spawn)."""

    cls: bool = True
    spans_key: str | None = None
    sentence_starts: bool = False
    entities: bool = False

    def __call__(self, doc: Doc) -> GlobalAttention:
        chosen = np.zeros(len(doc), dtype=bool)
        if self.spans_key is not None and self.spans_key in doc.spans:
            for span in doc.spans[self.spans_key]:
                chosen[span.start : span.end] = True
        if self.sentence_starts and len(doc):
            if not doc.has_annotation("SENT_START"):
                raise ValueError(Errors.LF122)
            chosen[[sent.start for sent in doc.sents]] = True
        if self.entities:
            for ent in doc.ents:
                chosen[ent.start : ent.end] = True
        return GlobalAttention(cls=self.cls, tokens=np.flatnonzero(chosen))


# confection < 1.0 (what spaCy < 3.8.13 brings) fills a config without validating it (`spacy init
# fill-config`, `spacy debug config`) through pydantic's `construct(cls, **values)`, which a setting
# named `cls` collides with ("got multiple values for argument 'cls'"). It aliases such names itself,
# as it does `validate`; `cls` joins them. confection 1 builds no pydantic model there.
if int(version("confection").split(".")[0]) < 1:
    confection.RESERVED_FIELDS.setdefault("cls", "cls\u0020")


@registry.misc("spacy-longformer.global_attention.v1")
def configure_global_attention(
    cls: bool = True,
    spans_key: str | None = None,
    sentence_starts: bool = False,
    entities: bool = False,
) -> GlobalAttentionGetter:
    """Union of ``<s>``, the tokens of ``doc.spans[spans_key]``, sentence starts and entities."""
    return GlobalAttentionChoice(cls, spans_key, sentence_starts, entities)


def global_piece_mask(
    choice: GlobalAttention, alignment: Ragged, *, n_pieces: int, n_tokens: int
) -> np.ndarray:
    """The pieces a getter's choice makes global: (n_pieces,) bool, ``<s>`` at piece 0.

    Each run of consecutive global tokens covers every piece from its first to its last, so a
    whitespace piece inside a span (one no token claims) is global too, as in transformers' "every
    piece before the first ``</s>``" for a question.
    """
    mask = np.zeros(n_pieces, dtype=bool)
    mask[0] = choice.cls
    if not len(choice.tokens):
        return mask
    if choice.tokens.min() < 0 or choice.tokens.max() >= n_tokens:
        bad = int(choice.tokens.max() if choice.tokens.max() >= n_tokens else choice.tokens.min())
        raise ValueError(Errors.LF124.format(index=bad, n_tokens=n_tokens))
    first_piece, last_piece = piece_bounds(alignment)
    tokens = np.unique(choice.tokens)
    run_starts = tokens[np.r_[True, np.diff(tokens) > 1]]
    run_ends = tokens[np.r_[np.diff(tokens) > 1, True]]
    for first, last in zip(run_starts, run_ends, strict=True):
        mask[first_piece[first] : last_piece[last] + 1] = True
    return mask
