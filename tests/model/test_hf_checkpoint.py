"""Loading and saving HF checkpoints: round trips with transformers, sharding, heads, clear errors."""

import json
import logging

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from spacy_longformer import model as ours_module
from spacy_longformer.model import LongformerForSequenceClassification, LongformerModel
from spacy_longformer.model.hf_checkpoint import ENCODER_KEYS, HEAD_KEYS, parse_size

from .oracle import hf_config, make_batch, save_hf_model

ARCHITECTURES = list(HEAD_KEYS)


@pytest.fixture(autouse=True)
def no_grad():
    with torch.no_grad():
        yield


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_what_we_save_transformers_loads(tmp_path, name):
    """Load an HF checkpoint, save it with our code, load that with transformers: same outputs,
    no missing or unexpected keys."""
    # QA heads have two outputs (start, end), which transformers sizes by num_labels.
    config = hf_config("w6-4", num_labels=2 if name == "LongformerForQuestionAnswering" else 3)
    theirs = save_hf_model(getattr(transformers, name), config, tmp_path / "hf")
    ours = getattr(ours_module, name).from_pretrained(tmp_path / "hf")
    ours.save_pretrained(tmp_path / "ours")
    back, info = getattr(transformers, name).from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    assert json.loads((tmp_path / "ours" / "config.json").read_text())["architectures"] == [name]
    expected_state = theirs.state_dict()
    for key, value in back.state_dict().items():
        assert torch.equal(value, expected_state[key]), key


def test_round_trip_through_our_loader_is_exact(tmp_path):
    config = hf_config("w4-8")
    save_hf_model(transformers.LongformerModel, config, tmp_path / "hf")
    first = LongformerModel.from_pretrained(tmp_path / "hf")
    first.save_pretrained(tmp_path / "ours")
    second = LongformerModel.from_pretrained(tmp_path / "ours")
    for (k1, v1), (k2, v2) in zip(first.state_dict().items(), second.state_dict().items(), strict=True):
        assert k1 == k2 and torch.equal(v1, v2)
    assert second.config == first.config


def test_sharded_checkpoints_both_ways(tmp_path):
    config = hf_config("w4-8")
    theirs = save_hf_model(transformers.LongformerModel, config, tmp_path / "hf")
    theirs.save_pretrained(tmp_path / "hf-sharded", max_shard_size="20KB")
    assert (tmp_path / "hf-sharded" / "model.safetensors.index.json").exists()
    ours = LongformerModel.from_pretrained(tmp_path / "hf-sharded")
    ours.save_pretrained(tmp_path / "ours-sharded", max_shard_size="20KB")
    shards = sorted(p.name for p in (tmp_path / "ours-sharded").glob("model-*-of-*.safetensors"))
    assert len(shards) > 1
    back = transformers.LongformerModel.from_pretrained(tmp_path / "ours-sharded").eval()
    batch = make_batch([17], global_kind="first")
    a = back(batch.input_ids, global_attention_mask=batch.global_attention_mask).last_hidden_state
    b = ours.eval()(batch.input_ids, global_attention_mask=batch.global_attention_mask).last_hidden_state
    assert torch.allclose(a, b, atol=1e-5)


def test_head_checkpoint_into_base_and_base_into_head(tmp_path, caplog):
    config = hf_config("w4-8", num_labels=4)
    save_hf_model(transformers.LongformerForSequenceClassification, config, tmp_path / "cls")
    save_hf_model(transformers.LongformerModel, config, tmp_path / "base", seed=1)
    with caplog.at_level(logging.INFO, logger="spacy_longformer"):
        base = LongformerModel.from_pretrained(tmp_path / "cls")
    assert "ignored checkpoint weights of another head" in caplog.text
    assert "classifier.dense.weight" in caplog.text and "classifier.out_proj.bias" in caplog.text
    # no pooler in a classification checkpoint: the base model's pooler starts fresh, and says so
    assert "initialised fresh" in caplog.text and "pooler.weight" in caplog.text
    hf_cls = transformers.LongformerForSequenceClassification.from_pretrained(tmp_path / "cls")
    assert torch.equal(base.embeddings.word.weight, hf_cls.longformer.embeddings.word_embeddings.weight)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="spacy_longformer"):
        head = LongformerForSequenceClassification.from_pretrained(tmp_path / "base")
    assert "initialised fresh" in caplog.text
    assert "classifier.dense.weight" in caplog.text and "classifier.out_proj.bias" in caplog.text
    hf_base = transformers.LongformerModel.from_pretrained(tmp_path / "base")
    assert torch.equal(
        head.longformer.layers[1].attention.key_global.weight,
        hf_base.encoder.layer[1].attention.self.key_global.weight,
    )
    assert head.classifier.out_proj.weight.shape == (4, config.hidden_size)
    assert float(head.classifier.out_proj.weight.std()) > 0


def test_pickle_needs_opt_in(tmp_path):
    config = hf_config("w4-8")
    theirs = save_hf_model(transformers.LongformerModel, config, tmp_path / "hf")
    theirs.save_pretrained(tmp_path / "bin", safe_serialization=False)
    assert (tmp_path / "bin" / "pytorch_model.bin").exists()
    with pytest.raises(OSError, match=r"LF052.*allow_pickle=True"):
        LongformerModel.from_pretrained(tmp_path / "bin")
    ours = LongformerModel.from_pretrained(tmp_path / "bin", allow_pickle=True)
    reference = LongformerModel.from_pretrained(tmp_path / "hf")
    for a, b in zip(ours.state_dict().values(), reference.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_tied_and_untied_lm_decoder(tmp_path):
    for tie in (True, False):
        config = hf_config("w4-8", tie_word_embeddings=tie)
        theirs = save_hf_model(transformers.LongformerForMaskedLM, config, tmp_path / f"hf{tie}")
        ours = ours_module.LongformerForMaskedLM.from_pretrained(tmp_path / f"hf{tie}")
        batch = make_batch([11], global_kind="none")
        a = theirs(batch.input_ids).logits
        b = ours.eval()(batch.input_ids).logits
        assert torch.allclose(a, b, atol=1e-5)
        assert (ours.lm_head.decoder is None) == tie


def test_key_table_covers_every_transformers_parameter():
    """Each transformers parameter name matches exactly one row of our table."""
    config = hf_config("w4-8", num_labels=3)
    from spacy_longformer.model.hf_checkpoint import _compile

    patterns = [_compile(hf) for hf, _ in ENCODER_KEYS]
    for name in ARCHITECTURES:
        model = getattr(transformers, name)(config)
        head_patterns = [_compile(hf) for hf, _ in HEAD_KEYS[name]]
        for key in model.state_dict():
            body = key.removeprefix("longformer.")
            hits = sum(bool(p.match(body)) for p in patterns) + sum(bool(p.match(key)) for p in head_patterns)
            assert hits == 1 or key == "lm_head.decoder.bias", (name, key, hits)


# Errors: each names the problem, the value and the fix.


def test_missing_folder(tmp_path):
    with pytest.raises(OSError, match=r"LF050.*does not exist"):
        LongformerModel.from_pretrained(tmp_path / "nope")


def test_folder_without_config(tmp_path):
    with pytest.raises(OSError, match=r"LF050.*no config.json"):
        LongformerModel.from_pretrained(tmp_path)


def test_folder_without_weights(tmp_path):
    hf_config("w4-8").save_pretrained(tmp_path)
    with pytest.raises(OSError, match=r"LF051.*model.safetensors"):
        LongformerModel.from_pretrained(tmp_path)


def test_truncated_safetensors(tmp_path):
    save_hf_model(transformers.LongformerModel, hf_config("w4-8"), tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(OSError, match=r"LF053.*model.safetensors.*truncated or corrupt"):
        LongformerModel.from_pretrained(tmp_path)


def test_missing_shard(tmp_path):
    theirs = save_hf_model(transformers.LongformerModel, hf_config("w4-8"), tmp_path / "hf")
    theirs.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    shard = sorted((tmp_path / "sharded").glob("model-*.safetensors"))[-1]
    shard.unlink()
    with pytest.raises(OSError, match=rf"LF054.*{shard.name}"):
        LongformerModel.from_pretrained(tmp_path / "sharded")


def test_weights_that_do_not_fit_the_config(tmp_path):
    save_hf_model(transformers.LongformerModel, hf_config("w4-8"), tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    data["vocab_size"] = 90
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(
        ValueError, match=r"LF055.*embeddings.word.weight: checkpoint \(80, 24\), model \(90, 24\)"
    ):
        LongformerModel.from_pretrained(tmp_path)


def test_missing_encoder_weights(tmp_path):
    save_hf_model(transformers.LongformerModel, hf_config("w4-8"), tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    del state["encoder.layer.1.attention.self.key_global.weight"]
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match=r"LF056.*layers.1.attention.key_global.weight"):
        LongformerModel.from_pretrained(tmp_path)


def test_unknown_weights(tmp_path):
    save_hf_model(transformers.LongformerModel, hf_config("w4-8"), tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    state["decoder.rotary.inv_freq"] = torch.ones(3)
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match=r"LF057.*decoder.rotary.inv_freq"):
        LongformerModel.from_pretrained(tmp_path)


def test_not_a_longformer_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match=r"LF011.*'bert'.*convert-roberta"):
        LongformerModel.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    "value,expected", [(100, 100), ("2KB", 2000), ("1.5MiB", 1572864), ("3 GB", 3 * 10**9)]
)
def test_parse_size(value, expected):
    assert parse_size(value) == expected


@pytest.mark.parametrize("value", [0, -1, "lots", "10XB", True])
def test_parse_size_rejects(value):
    with pytest.raises(ValueError, match="LF059"):
        parse_size(value)
