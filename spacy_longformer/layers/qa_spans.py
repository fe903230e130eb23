"""Where a QA doc keeps its question and its answer."""

from __future__ import annotations

from spacy.tokens import Doc, Span

from ..errors import Errors

QUESTION_KEY = "question"
ANSWER_KEY = "answer"


def question_span(doc: Doc, key: str = QUESTION_KEY) -> Span:
    """The doc's question: the one span of ``doc.spans[key]``, starting at token 0."""
    group = doc.spans.get(key)
    if group is None or len(group) != 1 or group[0].start != 0 or len(group[0]) == 0:
        found = (
            "no such group"
            if group is None
            else f"{len(group)} span(s) " + ", ".join(f"[{span.start}:{span.end}]" for span in group)
        )
        raise ValueError(Errors.LF129.format(key=key, found=found))
    return group[0]
