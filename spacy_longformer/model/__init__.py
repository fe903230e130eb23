"""Pure-PyTorch Longformer: knows nothing of spaCy or thinc."""

from .config import LongformerConfig
from .encoder import LongformerModel
from .heads import (
    LongformerForMaskedLM,
    LongformerForMultipleChoice,
    LongformerForQuestionAnswering,
    LongformerForSequenceClassification,
    LongformerForTokenClassification,
)
from .output import (
    LongformerMaskedLMOutput,
    LongformerMultipleChoiceOutput,
    LongformerOutput,
    LongformerQuestionAnsweringOutput,
    LongformerSequenceClassifierOutput,
    LongformerTokenClassifierOutput,
)

__all__ = [
    "LongformerConfig",
    "LongformerModel",
    "LongformerForMaskedLM",
    "LongformerForSequenceClassification",
    "LongformerForTokenClassification",
    "LongformerForQuestionAnswering",
    "LongformerForMultipleChoice",
    "LongformerOutput",
    "LongformerMaskedLMOutput",
    "LongformerSequenceClassifierOutput",
    "LongformerTokenClassifierOutput",
    "LongformerQuestionAnsweringOutput",
    "LongformerMultipleChoiceOutput",
]
