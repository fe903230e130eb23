"""Question-answering documents: the question as ``doc.spans["question"]``, the context after it."""

from __future__ import annotations

from spacy.language import Language
from spacy.tokens import Doc, Span

from ..errors import Errors
from ..layers.qa_spans import ANSWER_KEY, QUESTION_KEY, question_span

__all__ = ["ANSWER_KEY", "QUESTION_KEY", "make_qa_doc", "question_span"]


def make_qa_doc(nlp: Language, question: str, context: str) -> Doc:
    """A Doc reading ``question`` then ``context`` (one space apart), with the question's tokens
    as the single span of ``doc.spans["question"]``. Run it with ``nlp(doc)``.

    The two texts are tokenized apart by ``nlp``'s tokenizer, so no token straddles them; the
    context's characters start at ``doc.spans["question"][0].end_char + 1``.
    """
    for what, value in (("question", question), ("context", context)):
        if not isinstance(value, str):
            raise ValueError(Errors.LF127.format(what=what, type_name=type(value).__name__))
    if not question.strip():
        raise ValueError(Errors.LF128)
    question_doc = nlp.make_doc(question.strip())
    context_doc = nlp.make_doc(context)
    doc = Doc.from_docs([question_doc, context_doc], ensure_whitespace=True)
    doc.spans[QUESTION_KEY] = [Span(doc, 0, len(question_doc))]
    return doc
