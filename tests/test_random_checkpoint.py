"""Random checkpoints are real HF checkpoints: transformers (the oracle) loads them and agrees."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from spacy_longformer.random_checkpoint import build_random_checkpoint, synthetic_text

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return build_random_checkpoint(
        tmp_path_factory.mktemp("random") / "checkpoint",
        vocab_size=600,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        attention_window=[8, 16],
        max_position_embeddings=514,
        seed=3,
    )


def test_synthetic_text_is_deterministic_with_exact_length():
    for n_words in (0, 1, 7, 250, 1234):
        assert len(synthetic_text(n_words, seed=5).split()) == n_words
    assert synthetic_text(300, seed=1) == synthetic_text(300, seed=1)
    assert synthetic_text(300, seed=1) != synthetic_text(300, seed=2)
    text = synthetic_text(2000, seed=0)
    assert "\n\n" in text and "," in text and text.endswith((".", "?"))


def test_folder_layout(checkpoint):
    names = {p.name for p in checkpoint.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names
    config = json.loads((checkpoint / "config.json").read_text(encoding="utf8"))
    assert config["model_type"] == "longformer"
    assert config["hidden_size"] == 32
    assert config["num_hidden_layers"] == 2
    assert config["attention_window"] == [8, 16]
    assert config["max_position_embeddings"] == 514
    assert 256 < config["vocab_size"] <= 600


def test_same_seed_same_checkpoint(checkpoint, tmp_path):
    again = build_random_checkpoint(
        tmp_path / "again",
        vocab_size=600,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        attention_window=[8, 16],
        max_position_embeddings=514,
        seed=3,
    )
    first, second = load_file(checkpoint / "model.safetensors"), load_file(again / "model.safetensors")
    assert first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(first[key], second[key], rtol=0, atol=0)
    assert (checkpoint / "tokenizer.json").read_text() == (again / "tokenizer.json").read_text()


def test_caller_rng_left_alone(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_random_checkpoint(tmp_path / "c", vocab_size=300, hidden_size=16, num_attention_heads=2, seed=9)
    torch.testing.assert_close(torch.rand(3), expected)


def test_transformers_tokenizer_loads_it_with_same_ids(checkpoint):
    from spacy_longformer.tokenization import LongformerTokenizer

    hf = transformers.LongformerTokenizerFast.from_pretrained(checkpoint)
    ours = LongformerTokenizer.from_pretrained(checkpoint)
    text = synthetic_text(300, seed=11)
    assert hf(text)["input_ids"] == list(ours.encode(text).ids)
    config = json.loads((checkpoint / "config.json").read_text(encoding="utf8"))
    assert hf.pad_token_id == config["pad_token_id"]
    assert hf.bos_token_id == config["bos_token_id"]
    assert hf.eos_token_id == config["eos_token_id"]
    assert len(hf) == config["vocab_size"]


def test_transformers_model_loads_it_and_agrees(checkpoint):
    from spacy_longformer.model import LongformerModel

    hf_model, info = transformers.LongformerModel.from_pretrained(checkpoint, output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == [], info
    hf_model.eval()
    ours = LongformerModel.from_pretrained(checkpoint).eval()

    tokenizer = transformers.LongformerTokenizerFast.from_pretrained(checkpoint)
    input_ids = torch.tensor([tokenizer(synthetic_text(120, seed=4))["input_ids"]])
    assert input_ids.shape[1] > 2 * 16  # longer than the widest window: sliding attention matters
    global_attention_mask = torch.zeros_like(input_ids)
    global_attention_mask[:, 0] = 1
    inputs = {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "global_attention_mask": global_attention_mask,
    }
    with torch.no_grad():
        expected = hf_model(**inputs).last_hidden_state
        got = ours(**inputs).last_hidden_state
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
