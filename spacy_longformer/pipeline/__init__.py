"""spaCy floor: pipeline components."""

from .longformer_encoder import LongformerEncoder, make_longformer_encoder

__all__ = ["LongformerEncoder", "make_longformer_encoder"]
