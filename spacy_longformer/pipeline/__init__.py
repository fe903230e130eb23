"""spaCy floor: pipeline components."""

from .longformer_encoder import LongformerEncoder, make_longformer_encoder
from .ner import LongformerNER, make_longformer_ner
from .qa import LongformerQA, make_longformer_qa, make_qa_scorer
from .textcat import (
    LongformerMultiLabelTextCategorizer,
    LongformerTextCategorizer,
    make_longformer_textcat,
    make_longformer_textcat_multilabel,
)

__all__ = [
    "LongformerEncoder",
    "LongformerMultiLabelTextCategorizer",
    "LongformerNER",
    "LongformerQA",
    "LongformerTextCategorizer",
    "make_longformer_encoder",
    "make_longformer_ner",
    "make_longformer_qa",
    "make_longformer_textcat",
    "make_longformer_textcat_multilabel",
    "make_qa_scorer",
]
