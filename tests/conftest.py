"""Shared fixtures: tiny random HF-format checkpoints built offline."""

import pytest
import torch

from spacy_longformer.random_checkpoint import build_random_checkpoint, synthetic_text

# The models here are tiny, so torch's intra-op threads buy nothing; on a busy machine (shared
# cores, CI runners) every parallel region waits for its slowest thread, which made a tiny
# model's backward pass 30-50x slower (1 s instead of 20 ms). One thread per test process.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A 2-layer Longformer (hidden 32, windows 8 and 16, 126 pieces per window) + its BPE."""
    path = tmp_path_factory.mktemp("tiny-longformer")
    texts = [synthetic_text(3000, seed=1), "naïve café 東京 🙂👍🏽 résumé\t\n  tabs and  spaces"]
    build_random_checkpoint(
        path,
        texts=texts,
        vocab_size=600,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=48,
        attention_window=[8, 16],
        max_position_embeddings=130,
        seed=0,
    )
    return path


@pytest.fixture(scope="session")
def perturbed_checkpoint(tiny_checkpoint, tmp_path_factory):
    """``tiny_checkpoint`` with every bias and LayerNorm perturbed and its Linear weights x3
    (``tests/model/oracle.py::perturb_``), same tokenizer: the checkpoint for tests that compare
    with transformers, where transformers' init (zero biases, near-uniform attention) would hide
    a bug in a bias path or in the attention."""
    from .model.oracle import save_perturbed_checkpoint

    return save_perturbed_checkpoint(tiny_checkpoint, tmp_path_factory.mktemp("perturbed-longformer"))
