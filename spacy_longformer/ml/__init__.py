"""thinc floor: the encoder as a thinc Model (planned by ``planning``, run by ``running``), piece<->token
alignment, listeners, global-attention getters and the task models."""

import os

import torch

from .encoder_model import build_longformer_encoder_v1
from .global_attention import GlobalAttention, configure_global_attention
from .listener import LongformerListener, build_longformer_listener_v1
from .types import LongformerData

# A process forked after torch's CPU thread pool has run hangs in its next parallel region (GNU
# OpenMP, which torch's CPU wheels use, can't start its threads again after fork): that is
# `nlp.pipe(n_process=N)` and `spacy apply --n-process N` on Linux. Each forked child runs torch on
# one thread, which suits N workers on N cores.
os.register_at_fork(after_in_child=lambda: torch.set_num_threads(1))

__all__ = [
    "GlobalAttention",
    "LongformerData",
    "LongformerListener",
    "build_longformer_encoder_v1",
    "build_longformer_listener_v1",
    "configure_global_attention",
]
