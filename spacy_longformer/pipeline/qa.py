"""``longformer_qa``: extractive question answering over long contexts.

A QA doc (``make_qa_doc``) holds its question as ``doc.spans["question"]`` and the context after
it; the encoder reads ``<s> question </s></s> context </s>`` with the question global (what
transformers' QA head does by default), repeating the question in every window of a long context.
The answer is the context span with the highest start + end logit (start <= end, at most
``max_answer_length`` pieces), widened to whole spaCy tokens, in ``doc.spans["answer"]`` with its
score in the group's ``attrs``.
"""

import re
import string
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc, Span, SpanGroup
from spacy.training import Example, validate_get_examples
from spacy.util import registry
from spacy.vocab import Vocab
from thinc.api import Model
from thinc.types import Floats2d
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from ..errors import Errors
from ..ml.alignment import piece_bounds
from ..ml.head_layer import loss_and_gradients
from ..ml.task_models import load_hf_head, read_hf_head
from ..ml.types import LongformerData
from ..model.heads import LongformerForQuestionAnswering, span_loss
from ..qa_docs import ANSWER_KEY
from ._task import TaskPipeMixin, task_model_config

DEFAULT_QA_MODEL = task_model_config(
    "spacy-longformer.QuestionAnswering.v1",
    {"head_checkpoint": None},
    default_global=LongformerForQuestionAnswering.default_global_attention,
)


@Language.factory(
    "longformer_qa",
    assigns=["doc.spans"],
    requires=["doc.spans"],
    default_config={
        "model": DEFAULT_QA_MODEL,
        "max_answer_length": 30,
        "allow_no_answer": False,
        "scorer": {"@scorers": "spacy-longformer.qa_scorer.v1"},
    },
    default_score_weights={"qa_f1": 1.0, "qa_exact": 0.0},
)
def make_longformer_qa(
    nlp: Language,
    name: str,
    model: Model,
    max_answer_length: int,
    allow_no_answer: bool,
    scorer: Callable | None,
) -> "LongformerQA":
    """max_answer_length: longest answer, in pieces. allow_no_answer: answer nothing when the
    ``<s>`` start + end logit beats every span (SQuAD 2.0 style training puts unanswerable
    questions' answers on ``<s>``)."""
    if isinstance(max_answer_length, bool) or not isinstance(max_answer_length, int) or max_answer_length < 1:
        raise ValueError(
            Errors.LF123.format(name="max_answer_length", expected="an int >= 1", value=max_answer_length)
        )
    return LongformerQA(
        nlp.vocab,
        model,
        name,
        max_answer_length=max_answer_length,
        allow_no_answer=allow_no_answer,
        scorer=scorer,
    )


class LongformerQA(TaskPipeMixin, TrainablePipe):
    """Answers the question of each QA doc with a span of its context."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "longformer_qa",
        *,
        max_answer_length: int = 30,
        allow_no_answer: bool = False,
        scorer: Callable | None = None,
    ) -> None:
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self.cfg: dict[str, Any] = {
            "max_answer_length": max_answer_length,
            "allow_no_answer": allow_no_answer,
        }
        self._name_config_sections()

    def initialize(
        self, get_examples: Callable[[], Iterable[Example]], *, nlp: Language | None = None
    ) -> None:
        """The head from a fine-tuned HF QA checkpoint, else a fresh one; no examples needed."""
        validate_get_examples(get_examples, "LongformerQA.initialize")
        _, weights = read_hf_head(self.model)
        self.model.set_dim("nO", 2, force=True)
        self.model.initialize()
        if weights:
            load_hf_head(self.model, weights)

    def predict(self, docs: Iterable[Doc]) -> list[tuple[int, int, float] | None]:
        """Per doc: the answer's first and last token and its score, or None."""
        docs = list(docs)
        if not docs:
            return []
        outputs = self.model.predict(docs)
        return [
            self._best_answer(doc, logits, data) for doc, (logits, data) in zip(docs, outputs, strict=True)
        ]

    def _best_answer(self, doc: Doc, logits: Floats2d, data: LongformerData) -> tuple[int, int, float] | None:
        scores = self.model.ops.to_numpy(logits).astype("f")
        context_start = _context_start(data)
        span = best_span(
            scores[:, 0], scores[:, 1], context_start, data.n_pieces - 1, self.cfg["max_answer_length"]
        )
        if span is None:
            return None
        start, end, score = span
        if self.cfg["allow_no_answer"] and scores[0, 0] + scores[0, 1] > score:
            return None
        # The answer's edges are words: a whitespace token (a double space, a newline) borrows the
        # next word's piece, and must not start or end an answer.
        words = np.flatnonzero([not token.is_space for token in doc])
        if not len(words):
            return None
        first, last = (bound[words] for bound in piece_bounds(data.alignment))
        start_word = min(int(np.searchsorted(last, start, side="left")), len(words) - 1)
        end_word = max(int(np.searchsorted(first, end, side="right")) - 1, start_word)
        return int(words[start_word]), int(words[end_word]), float(score)

    def set_annotations(self, docs: Iterable[Doc], answers: list[tuple[int, int, float] | None]) -> None:
        for doc, answer in zip(docs, answers, strict=True):
            if answer is None:
                doc.spans[ANSWER_KEY] = SpanGroup(doc, name=ANSWER_KEY, attrs={"score": None}, spans=[])
            else:
                start, end, score = answer
                span = Span(doc, start, end + 1)
                doc.spans[ANSWER_KEY] = SpanGroup(doc, name=ANSWER_KEY, attrs={"score": score}, spans=[span])

    def get_loss(
        self, examples: Iterable[Example], outputs: list[tuple[Floats2d, LongformerData]]
    ) -> tuple[float, list[Floats2d]]:
        """transformers' QA loss (``span_loss``): cross-entropy of the gold start piece and of the
        gold end piece, halved, averaged over the questions with a gold answer (unanswerable ones
        point at ``<s>``)."""
        examples = list(examples)
        targets = [self._gold_pieces(eg, data) for eg, (_, data) in zip(examples, outputs, strict=True)]
        # A doc without a gold answer points past every doc's pieces: an ignored position.
        beyond = max((data.n_pieces for _, data in outputs), default=0)
        starts, ends = (
            np.asarray([beyond if target is None else target[i] for target in targets], dtype="int64")
            for i in (0, 1)
        )
        return loss_and_gradients(_answer_loss, [logits for logits, _ in outputs], starts, ends)

    def _gold_pieces(self, example: Example, data: LongformerData) -> tuple[int, int] | None:
        """Start and end piece of the gold answer (``<s>`` for an unanswerable question), or None
        when the reference doc says nothing about the answer."""
        group = example.reference.spans.get(ANSWER_KEY)
        if group is None:
            return None
        if len(group) == 0:
            return 0, 0
        aligned = example.get_aligned_spans_y2x([group[0]], allow_overlap=True)
        if not aligned:
            return None
        span = aligned[0]
        first, last = piece_bounds(data.alignment)
        return int(first[span.start]), int(last[span.end - 1])


def _context_start(data: LongformerData) -> int:
    """First context piece, as the encoder reports it; fewer than ``<s> q </s></s>`` before it means
    the encoder read the doc as one text."""
    if data.context_start < 4:
        raise ValueError(Errors.LF140)
    return data.context_start


def best_span(
    start_logits: np.ndarray, end_logits: np.ndarray, lo: int, hi: int, max_length: int
) -> tuple[int, int, float] | None:
    """The span ``lo <= s <= e < hi``, ``e - s < max_length``, with the highest start + end logit;
    None when ``lo >= hi``. Ties go to the earliest start, then the shortest span."""
    if lo >= hi:
        return None
    start, end = start_logits[lo:hi], end_logits[lo:hi]
    best: tuple[int, int, float] | None = None
    for width in range(min(max_length, hi - lo)):
        scores = start[: len(start) - width] + end[width:]
        i = int(np.argmax(scores))
        if best is None or scores[i] > best[2] or (scores[i] == best[2] and lo + i < best[0]):
            best = (lo + i, lo + i + width, float(scores[i]))
    return best


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _f1(prediction: str, gold: str) -> float:
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not predicted or not expected:
        return float(predicted == expected)
    common = sum((Counter(predicted) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def score_qa(examples: Iterable[Example], **kwargs: Any) -> dict[str, float | None]:
    """SQuAD exact match and token F1 of ``doc.spans["answer"]``, the best over the reference's
    answer spans (an empty group: no answer, matched by no predicted answer)."""
    exact, f1 = [], []
    for example in examples:
        gold_group = example.reference.spans.get(ANSWER_KEY)
        if gold_group is None:
            continue
        predicted_group = example.predicted.spans.get(ANSWER_KEY)
        prediction = predicted_group[0].text if predicted_group is not None and len(predicted_group) else ""
        golds = [span.text for span in gold_group] or [""]
        exact.append(max(float(normalize_answer(prediction) == normalize_answer(g)) for g in golds))
        f1.append(max(_f1(prediction, g) for g in golds))
    return {
        "qa_exact": sum(exact) / len(exact) if exact else None,
        "qa_f1": sum(f1) / len(f1) if f1 else None,
    }


@registry.scorers("spacy-longformer.qa_scorer.v1")
def make_qa_scorer() -> Callable[..., dict[str, float | None]]:
    return score_qa


def _answer_loss(logits: list[Tensor], starts: Tensor, ends: Tensor) -> Tensor:
    """``span_loss`` over docs of different lengths: padded with the lowest logit, which takes no
    probability."""
    padded = pad_sequence(logits, batch_first=True, padding_value=torch.finfo(logits[0].dtype).min)
    return span_loss(padded[..., 0], padded[..., 1], starts, ends)
