"""Question-answering documents: the question as ``doc.spans["question"]``, the context after it.

A QA doc's text is the question, a separator (a newline), then the context; its gold answer is the
one span of ``doc.spans["answer"]`` (an empty group: unanswerable). This module is the one home of
that layout, for the data readers, the encoder (which reads the question and the context as a text
pair) and the QA component alike; it needs spaCy, not torch. The newline lets
``spacy-longformer.QATokenizer.v1`` restore the question group from the text alone, so docs that
spaCy rebuilds from text (``spacy train`` and ``spacy evaluate`` readers, ``nlp(text)``) keep it.
"""

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import registry
from spacy.vocab import Vocab

from .errors import Errors

QUESTION_KEY = "question"
ANSWER_KEY = "answer"
SEPARATOR = "\n"


def make_qa_doc(nlp: Language, question: str, context: str) -> Doc:
    """A Doc reading ``question``, a newline, then ``context``, with the question's tokens as the
    single span of ``doc.spans["question"]``. Run it with ``nlp(doc)``.

    The question's own whitespace is collapsed to single spaces (so it has no newline); the
    context is kept as given and starts at ``doc.spans["question"][0].end_char + 1``.
    """
    for what, value in (("question", question), ("context", context)):
        if not isinstance(value, str):
            raise ValueError(Errors.LF127.format(what=what, type_name=type(value).__name__))
    question = " ".join(question.split())
    if not question:
        raise ValueError(Errors.LF128)
    doc = nlp.make_doc(question + SEPARATOR + context)
    mark_question(doc)
    return doc


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


def context_start_char(doc: Doc, key: str = QUESTION_KEY) -> int:
    """Where the context starts in ``doc.text``: after the question and its separator."""
    return min(question_span(doc, key).end_char + len(SEPARATOR), len(doc.text))


def mark_question(doc: Doc) -> None:
    """Set ``doc.spans["question"]`` to the tokens before the text's first newline, if any."""
    end = doc.text.find(SEPARATOR)
    if end <= 0 or not doc.text[:end].strip():
        return
    n_tokens = sum(1 for token in doc if token.idx + len(token.text) <= end)
    if n_tokens:
        doc.spans[QUESTION_KEY] = [Span(doc, 0, n_tokens)]


class QATokenizer:
    """spaCy's tokenizer, plus ``doc.spans["question"]`` for the text before the first newline."""

    def __init__(self, tokenizer: Callable[[str], Doc]) -> None:
        self.tokenizer = tokenizer

    @property
    def vocab(self) -> Vocab:
        return self.tokenizer.vocab

    def __call__(self, text: str) -> Doc:
        doc = self.tokenizer(text)
        mark_question(doc)
        return doc

    def pipe(self, texts: Iterable[str], batch_size: int = 1000) -> Iterator[Doc]:
        for text in texts:
            yield self(text)

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        return self.tokenizer.to_bytes(exclude=exclude)

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "QATokenizer":
        self.tokenizer.from_bytes(bytes_data, exclude=exclude)
        return self

    def to_disk(self, path: str | Path, **kwargs: Any) -> None:
        self.tokenizer.to_disk(path, **kwargs)

    def from_disk(self, path: str | Path, **kwargs: Any) -> "QATokenizer":
        self.tokenizer.from_disk(path, **kwargs)
        return self


@registry.tokenizers("spacy-longformer.QATokenizer.v1")
def create_qa_tokenizer() -> Callable[[Language], QATokenizer]:
    """The language's own tokenizer, which also marks a QA text's question (see ``make_qa_doc``)."""
    create_default = registry.tokenizers.get("spacy.Tokenizer.v1")()

    def create(nlp: Language) -> QATokenizer:
        return QATokenizer(create_default(nlp))

    return create
