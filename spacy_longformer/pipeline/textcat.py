"""``longformer_textcat`` and ``longformer_textcat_multilabel``: transformers' sequence
classification head on ``<s>`` (global by default), softmax or sigmoid into ``doc.cats``.

They are spaCy's ``textcat`` components (labels, scoring, ``doc.cats``) with a Longformer model
and transformers' losses: cross-entropy (exclusive) or binary cross-entropy (multi-label).
"""

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from spacy.language import Language
from spacy.pipeline.textcat import TextCategorizer
from spacy.pipeline.textcat_multilabel import MultiLabel_TextCategorizer
from spacy.tokens import Doc
from spacy.training import Example, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Model
from thinc.types import Floats2d
from torch import Tensor

from ..errors import Errors
from ..ml.head_layer import loss_and_gradients
from ..ml.task_models import head_is_initialized, load_hf_head, read_hf_head
from ..model.heads import LongformerForSequenceClassification, sequence_classification_loss
from ._task import TaskPipeMixin, task_model_config

_HEAD = {"dropout": 0.1, "head_checkpoint": None}
DEFAULT_TEXTCAT_MODEL = task_model_config(
    "spacy-longformer.TextClassifier.v1",
    _HEAD,
    default_global=LongformerForSequenceClassification.default_global_attention,
)
# spaCy's textcat score weights: cats_score counts, the rest are reported.
_SCORE_WEIGHTS: dict[str, float | None] = {
    "cats_score": 1.0,
    **dict.fromkeys(
        ["cats_score_desc", "cats_micro_p", "cats_micro_r", "cats_micro_f", "cats_macro_p", "cats_macro_r"],
        None,
    ),
    **dict.fromkeys(["cats_macro_f", "cats_macro_auc", "cats_f_per_type"], None),
}


@Language.factory(
    "longformer_textcat",
    assigns=["doc.cats"],
    default_config={
        "model": DEFAULT_TEXTCAT_MODEL,
        "threshold": 0.0,
        "scorer": {"@scorers": "spacy.textcat_scorer.v2"},
    },
    default_score_weights=_SCORE_WEIGHTS,
)
def make_longformer_textcat(
    nlp: Language, name: str, model: Model, threshold: float, scorer: Callable | None
) -> "LongformerTextCategorizer":
    """Exclusive classes: one label per doc, ``doc.cats`` sums to 1."""
    return LongformerTextCategorizer(nlp.vocab, model, name, threshold=threshold, scorer=scorer)


@Language.factory(
    "longformer_textcat_multilabel",
    assigns=["doc.cats"],
    default_config={
        "model": DEFAULT_TEXTCAT_MODEL,
        "threshold": 0.5,
        "scorer": {"@scorers": "spacy.textcat_multilabel_scorer.v2"},
    },
    default_score_weights=_SCORE_WEIGHTS,
)
def make_longformer_textcat_multilabel(
    nlp: Language, name: str, model: Model, threshold: float, scorer: Callable | None
) -> "LongformerMultiLabelTextCategorizer":
    """Independent labels: each of ``doc.cats`` in [0, 1] on its own."""
    return LongformerMultiLabelTextCategorizer(nlp.vocab, model, name, threshold=threshold, scorer=scorer)


class _LongformerTextcatMixin(TaskPipeMixin):
    """The Longformer parts of both textcat components; ``exclusive`` picks softmax or sigmoid."""

    exclusive: bool
    model: Model
    cfg: dict[str, Any]
    labels: tuple[str, ...]
    _examples_to_truth: Callable
    _validate_categories: Callable

    def predict(self, docs: Iterable[Doc]) -> Floats2d:
        """Probabilities (docs x labels); unlike spaCy's textcat, empty docs are classified too
        (as transformers classifies ``<s></s>``)."""
        docs = list(docs)
        if not docs:
            return self.model.ops.alloc2f(0, len(self.labels))
        return self._activate(self.model.predict(docs))

    def _activate(self, logits: Floats2d) -> Floats2d:
        ops = self.model.ops
        return ops.softmax(logits, axis=-1) if self.exclusive else ops.sigmoid(logits)

    def get_loss(self, examples: Iterable[Example], scores: Floats2d) -> tuple[float, Floats2d]:
        """transformers' loss on the logits (``sequence_classification_loss``): cross-entropy, or
        binary cross-entropy per label (labels a multi-label doc leaves out are missing and carry
        no loss)."""
        examples = list(examples)
        self._validate_categories(examples)
        for example in examples:
            unknown = sorted(set(example.reference.cats) - set(self.labels))
            if unknown:
                raise ValueError(
                    Errors.LF155.format(name=self.name, label=unknown[0], labels=list(self.labels))
                )
        truths, not_missing = self._examples_to_truth(examples)
        problem_type = "single_label_classification" if self.exclusive else "multi_label_classification"
        loss, (d_scores,) = loss_and_gradients(
            partial(_classification_loss, problem_type=problem_type),
            [scores],
            truths,
            None if self.exclusive else not_missing,
        )
        return loss, d_scores

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Language | None = None,
        labels: Iterable[str] | None = None,
        positive_label: str | None = None,
    ) -> None:
        """Labels and head from a fine-tuned HF sequence-classification checkpoint (its
        ``id2label``, no examples needed), else labels from ``labels`` or the examples' cats and a
        fresh head."""
        validate_get_examples(get_examples, f"{type(self).__name__}.initialize")
        checkpoint_labels, weights = read_hf_head(self.model)
        if checkpoint_labels is not None:
            self.cfg["labels"] = list(checkpoint_labels)
        else:
            self._validate_categories(get_examples())
            for label in labels if labels is not None else (c for eg in get_examples() for c in eg.y.cats):
                self.add_label(label)
        if len(self.labels) < (2 if self.exclusive else 1):
            raise ValueError(Errors.LF135.format(name=self.name, labels=list(self.labels)))
        if positive_label is not None and (positive_label not in self.labels or len(self.labels) != 2):
            raise ValueError(Errors.LF136.format(positive_label=positive_label, labels=list(self.labels)))
        self.cfg["positive_label"] = positive_label
        self.model.set_dim("nO", len(self.labels), force=True)
        self.model.initialize()
        if weights:
            load_hf_head(self.model, weights)

    def add_label(self, label: str) -> int:
        if label in self.labels:
            return 0
        if head_is_initialized(self.model):
            raise ValueError(Errors.LF137.format(name=self.name, label=label))
        self.cfg["labels"].append(label)
        self.vocab.strings.add(label)
        return 1


class LongformerTextCategorizer(_LongformerTextcatMixin, TextCategorizer):
    exclusive = True

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "longformer_textcat",
        *,
        threshold: float,
        scorer: Callable | None,
    ) -> None:
        TextCategorizer.__init__(self, vocab, model, name, threshold=threshold, scorer=scorer)
        self._name_config_sections()


class LongformerMultiLabelTextCategorizer(_LongformerTextcatMixin, MultiLabel_TextCategorizer):
    exclusive = False

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "longformer_textcat_multilabel",
        *,
        threshold: float,
        scorer: Callable | None,
    ) -> None:
        MultiLabel_TextCategorizer.__init__(self, vocab, model, name, threshold=threshold, scorer=scorer)
        self._name_config_sections()


def _classification_loss(
    logits: list[Tensor], truths: Tensor, weights: Tensor | None, *, problem_type: str
) -> Tensor:
    return sequence_classification_loss(logits[0], truths, problem_type=problem_type, weights=weights)
