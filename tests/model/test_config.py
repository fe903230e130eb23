"""LongformerConfig: transformers' keys and defaults, validated with errors that name the fix."""

import json

import pytest
import torch
import transformers
from transformers.activations import ACT2FN

from spacy_longformer.model import LongformerConfig
from spacy_longformer.model.linear import ACTIVATIONS


def test_defaults_equal_transformers():
    """A config.json that leaves keys out means the same model to both libraries."""
    ours = LongformerConfig.from_dict({})
    theirs = transformers.LongformerConfig()
    for key in (
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "hidden_act",
        "max_position_embeddings",
        "type_vocab_size",
        "layer_norm_eps",
        "pad_token_id",
        "bos_token_id",
        "eos_token_id",
        "sep_token_id",
        "initializer_range",
        "hidden_dropout_prob",
        "attention_probs_dropout_prob",
        "tie_word_embeddings",
    ):
        assert getattr(ours, key) == getattr(theirs, key), key
    assert ours.attention_window == [512] * 12
    assert ours.id2label == {0: "LABEL_0", 1: "LABEL_1"}


def test_round_trip_with_transformers(tmp_path):
    theirs = transformers.LongformerConfig(
        hidden_size=36,
        num_attention_heads=4,
        num_hidden_layers=3,
        attention_window=[6, 10, 6],
        id2label={0: "NEG", 1: "POS", 2: "MIXED"},
        vocab_size=99,
        max_position_embeddings=130,
    )
    theirs.save_pretrained(tmp_path)
    ours = LongformerConfig.from_json_file(tmp_path / "config.json")
    assert ours.attention_window == [6, 10, 6]
    assert ours.id2label == {0: "NEG", 1: "POS", 2: "MIXED"} and ours.num_labels == 3
    assert ours.label2id == {"NEG": 0, "POS": 1, "MIXED": 2}
    assert ours.max_tokens == 128
    ours.to_json_file(tmp_path / "again.json")
    back = transformers.LongformerConfig.from_json_file(tmp_path / "again.json")
    for key in ("hidden_size", "attention_window", "id2label", "vocab_size"):
        assert getattr(back, key) == getattr(theirs, key), key
    assert back.label2id == {"NEG": 0, "POS": 1, "MIXED": 2}
    assert LongformerConfig.from_json_file(tmp_path / "again.json") == ours


def test_num_labels_without_id2label():
    assert LongformerConfig.from_dict({"num_labels": 4}).id2label == {i: f"LABEL_{i}" for i in range(4)}


@pytest.mark.parametrize(
    "settings,pattern",
    [
        ({"attention_window": 5, "num_hidden_layers": 1}, r"LF003.*layer 0 is 5.*even and >= 2.*e\.g\. 6"),
        ({"attention_window": [4, 7], "num_hidden_layers": 2}, r"LF003.*layer 1 is 7"),
        ({"attention_window": 0, "num_hidden_layers": 1}, r"LF003.*layer 0 is 0"),
        ({"attention_window": [4, 4, 4], "num_hidden_layers": 2}, r"LF002.*3 entries.*2 layers"),
        ({"attention_window": "512"}, r"LF001.*'512'"),
        ({"hidden_size": 30, "num_attention_heads": 4}, r"LF004.*\(30\).*\(4\)"),
        ({"hidden_act": "gelu_10"}, r"LF006.*'gelu_10'.*gelu"),
        ({"vocab_size": 2}, r"LF007.*`eos_token_id` is 2.*\(2\)"),
        ({"max_position_embeddings": 2}, r"LF008.*\(2\).*at least 3"),
        ({"hidden_size": 0}, r"LF005.*`hidden_size` must be a positive int, got 0"),
        ({"hidden_dropout_prob": 1.5}, r"LF005.*hidden_dropout_prob"),
        ({"num_labels": 3, "id2label": {"0": "A", "1": "B"}}, r"LF009.*2 labels.*`num_labels` is 3"),
        ({"problem_type": "ranking"}, r"LF005.*problem_type"),
    ],
)
def test_invalid_configs_name_the_fix(settings, pattern):
    with pytest.raises(ValueError, match=pattern):
        LongformerConfig.from_dict(settings)


def test_unreadable_config(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"LF010.*config.json"):
        LongformerConfig.from_json_file(path)
    path.write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match=r"LF010.*not a JSON object"):
        LongformerConfig.from_json_file(path)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_every_accepted_activation_matches_transformers(name):
    x = torch.linspace(-6, 6, 101)
    assert torch.allclose(ACTIVATIONS[name](x), ACT2FN[name](x), atol=1e-4), name
