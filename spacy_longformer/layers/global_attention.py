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

import numpy as np
from spacy.tokens import Doc
from spacy.util import registry

from ..errors import Errors


@dataclass
class GlobalAttention:
    """A getter's choice for one doc: ``cls`` puts each window's ``<s>`` global; ``tokens`` holds
    the indices of the doc's global tokens (every piece of such a token is global)."""

    cls: bool
    tokens: np.ndarray


GlobalAttentionGetter = Callable[[Doc], GlobalAttention]


@registry.misc("spacy-longformer.global_attention.v1")
def configure_global_attention(
    cls: bool = True,
    spans_key: str | None = None,
    sentence_starts: bool = False,
    entities: bool = False,
) -> GlobalAttentionGetter:
    """Union of ``<s>``, the tokens of ``doc.spans[spans_key]``, sentence starts and entities."""

    def get_global_attention(doc: Doc) -> GlobalAttention:
        chosen = np.zeros(len(doc), dtype=bool)
        if spans_key is not None and spans_key in doc.spans:
            for span in doc.spans[spans_key]:
                chosen[span.start : span.end] = True
        if sentence_starts and len(doc):
            if not doc.has_annotation("SENT_START"):
                raise ValueError(Errors.LF122)
            chosen[[sent.start for sent in doc.sents]] = True
        if entities:
            for ent in doc.ents:
                chosen[ent.start : ent.end] = True
        return GlobalAttention(cls=cls, tokens=np.flatnonzero(chosen))

    return get_global_attention
