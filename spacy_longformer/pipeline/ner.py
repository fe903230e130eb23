"""``longformer_ner``: token classification over pieces (the first piece of each spaCy token
decides its tag), tags decoded into ``doc.ents``.

Tags are the head's ``id2label``: ``O`` plus ``B-``/``I-`` tags (IOB2 or IOB1), or a scheme with
single/end tags (``S-``/``E-``, ``U-``/``L-``); a tag without a prefix counts as ``I-``. Decoding
is lenient the way seqeval's is: an ``I-X`` that does not continue an ``X`` starts one.
"""

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc, Span
from spacy.training import Example, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Model
from thinc.types import Floats2d
from torch import Tensor

from ..errors import Errors
from ..ml.head_layer import loss_and_gradients
from ..ml.task_models import head_is_initialized, load_hf_head, read_hf_head
from ..model.heads import LongformerForTokenClassification, token_classification_loss
from ._task import TaskPipeMixin, task_model_config

DEFAULT_NER_MODEL = task_model_config(
    "spacy-longformer.TokenClassifier.v1",
    {"dropout": 0.1, "head_checkpoint": None},
    default_global=LongformerForTokenClassification.default_global_attention,
)
_STARTS = {"B", "S", "U"}
_ENDS = {"S", "U", "E", "L"}
# For a gold BILUO tag, the first of these prefixes the tag set has.
_GOLD_PREFIXES = {"B": ("B", "I"), "I": ("I",), "L": ("L", "E", "I"), "U": ("U", "S", "B", "I")}


@Language.factory(
    "longformer_ner",
    assigns=["doc.ents"],
    default_config={"model": DEFAULT_NER_MODEL, "scorer": {"@scorers": "spacy.ner_scorer.v1"}},
    default_score_weights={"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, "ents_per_type": None},
)
def make_longformer_ner(nlp: Language, name: str, model: Model, scorer: Callable | None) -> "LongformerNER":
    return LongformerNER(nlp.vocab, model, name, scorer=scorer)


def split_tag(tag: str) -> tuple[str, str | None]:
    """``"B-PER"`` -> ``("B", "PER")``; ``"O"`` -> ``("O", None)``; ``"PER"`` -> ``("I", "PER")``."""
    if tag == "O":
        return "O", None
    prefix, sep, label = tag.partition("-")
    if sep and prefix in {"B", "I", "E", "S", "L", "U"} and label:
        return prefix, label
    return "I", tag


def decode_tags(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """Entities ``(start, end, label)`` of a token tag sequence."""
    entities: list[tuple[int, int, str]] = []
    current: list[Any] | None = None
    for i, tag in enumerate(tags):
        prefix, label = split_tag(tag)
        if prefix == "O":
            current = None
            continue
        if prefix in _STARTS or current is None or current[2] != label:
            current = [i, i + 1, label]
            entities.append(current)
        else:
            current[1] = i + 1
        if prefix in _ENDS:
            current = None
    return [tuple(entity) for entity in entities]


class LongformerNER(TaskPipeMixin, TrainablePipe):
    """Named entities from a Longformer token-classification head."""

    def __init__(
        self, vocab: Vocab, model: Model, name: str = "longformer_ner", *, scorer: Callable | None = None
    ) -> None:
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self.cfg: dict[str, Any] = {"tags": []}
        self._name_config_sections()

    @property
    def tags(self) -> tuple[str, ...]:
        """The head's outputs, in order (its ``id2label``)."""
        return tuple(self.cfg["tags"])

    @property
    def labels(self) -> tuple[str, ...]:
        """Entity labels."""
        return tuple(sorted({label for label in (split_tag(t)[1] for t in self.tags) if label}))

    @property
    def label_data(self) -> list[str]:
        return list(self.labels)

    def add_label(self, label: str) -> int:
        if label in self.labels:
            return 0
        if head_is_initialized(self.model):
            raise ValueError(Errors.LF137.format(name=self.name, label=label))
        self.cfg["tags"] = (["O"] if not self.tags else list(self.tags)) + [f"B-{label}", f"I-{label}"]
        self.vocab.strings.add(label)
        return 1

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Language | None = None,
        labels: Iterable[str] | None = None,
    ) -> None:
        """Tags and head from a fine-tuned HF token-classification checkpoint (its ``id2label``,
        no examples needed), else BIO tags for ``labels`` or the examples' entity labels."""
        validate_get_examples(get_examples, "LongformerNER.initialize")
        checkpoint_tags, weights = read_hf_head(self.model)
        if checkpoint_tags is not None:
            self.cfg["tags"] = list(checkpoint_tags)
        else:
            found = (
                labels if labels is not None else {ent.label_ for eg in get_examples() for ent in eg.y.ents}
            )
            for label in sorted(found):
                self.add_label(label)
            if not self.tags:
                raise ValueError(Errors.LF138.format(name=self.name))
        self.model.set_dim("nO", len(self.tags), force=True)
        self.model.initialize()
        if weights:
            load_hf_head(self.model, weights)

    def predict(self, docs: Iterable[Doc]) -> list[np.ndarray]:
        """Tag ids per token, the argmax of each token's first piece."""
        docs = list(docs)
        if not docs:
            return []
        return [self.model.ops.to_numpy(logits.argmax(axis=-1)) for logits in self.model.predict(docs)]

    def set_annotations(self, docs: Iterable[Doc], tag_ids: list[np.ndarray]) -> None:
        for doc, ids in zip(docs, tag_ids, strict=True):
            # Tags are decoded over the words alone: a whitespace token (a double space, a newline)
            # borrows the next word's piece, and must neither start nor end an entity.
            words = [i for i, token in enumerate(doc) if not token.is_space]
            tags = [self.tags[ids[i]] for i in words]
            doc.ents = [
                Span(doc, words[start], words[end - 1] + 1, label=label)
                for start, end, label in decode_tags(tags)
            ]

    def get_loss(self, examples: Iterable[Example], logits: list[Floats2d]) -> tuple[float, list[Floats2d]]:
        """transformers' token-classification loss (``token_classification_loss``) on each token's
        first piece: cross-entropy averaged over the tokens whose gold tag is known (spaCy's missing
        ``-`` tags carry no loss)."""
        index = {tag: i for i, tag in enumerate(self.tags)}
        golds = np.concatenate([self._gold_ids(eg, index) for eg in examples] or [np.zeros(0, dtype="i")])
        labels = np.where(golds >= 0, golds, -100).astype("int64")
        return loss_and_gradients(_tag_loss, logits, labels)

    def _gold_ids(self, example: Example, index: dict[str, int]) -> np.ndarray:
        """The example's BILUO entity tags as ids of our tags; -1 where the tag is missing, and on
        whitespace tokens."""
        ids = np.full(len(example.predicted), -1, dtype="i")
        for i, tag in enumerate(example.get_aligned_ner()):
            # A whitespace token's row is the next word's piece: it must not decide that label.
            if tag is None or tag == "-" or example.predicted[i].is_space:
                continue
            if tag == "O":
                ids[i] = index.get("O", -1)
                continue
            prefix, label = tag.split("-", 1)
            for candidate in _GOLD_PREFIXES[prefix]:
                if f"{candidate}-{label}" in index:
                    ids[i] = index[f"{candidate}-{label}"]
                    break
            else:
                if label in index:
                    ids[i] = index[label]
                else:
                    raise ValueError(
                        Errors.LF139.format(name=self.name, label=label, labels=list(self.labels))
                    )
        return ids


def _tag_loss(logits: list[Tensor], labels: Tensor) -> Tensor:
    return token_classification_loss(torch.cat(logits), labels)
