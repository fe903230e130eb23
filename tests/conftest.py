"""Shared fixtures: tiny random HF-format checkpoints built offline."""

import pytest

from spacy_longformer.random_checkpoint import build_random_checkpoint, synthetic_text


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
