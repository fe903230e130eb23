"""thinc floor: the encoder as a thinc Model (planned by ``planning``, run by ``running``), piece<->token
alignment, listeners, global-attention getters and the task models."""

from .encoder_model import build_longformer_encoder_v1
from .global_attention import GlobalAttention, configure_global_attention
from .listener import LongformerListener, build_longformer_listener_v1
from .types import LongformerData

__all__ = [
    "GlobalAttention",
    "LongformerData",
    "LongformerListener",
    "build_longformer_encoder_v1",
    "build_longformer_listener_v1",
    "configure_global_attention",
]
