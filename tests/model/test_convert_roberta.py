"""convert_roberta: a RoBERTa checkpoint becomes a Longformer as in the paper (positions tiled, global
projections copied), loadable by us and by transformers, equal to RoBERTa where attention reaches.

The exact condition for equal last hidden states (checked below, both ways): the input fits
RoBERTa's position table, and every two real tokens that are not global lie at most
``min(attention_window) / 2`` places apart. Without global tokens, for a right-padded row of
``n_real`` real tokens: ``n_real - 1 <= window / 2``. Global tokens see every token and are seen by
every token through projections copied from the local ones, so they widen the condition; padding is
never attended to, so only real positions are compared.
"""

from __future__ import annotations

import json

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from spacy_longformer.cli import app
from spacy_longformer.model import LongformerForMaskedLM, LongformerModel
from spacy_longformer.model.convert_roberta import convert_roberta, tile_positions
from spacy_longformer.random_checkpoint import synthetic_text
from spacy_longformer.tokenization import LongformerTokenizer, train_byte_level_bpe

N_POSITIONS = 64  # RoBERTa's learned positions (max_position_embeddings 66 = 2 offset rows + 64)
MAX_LENGTH = 256
WINDOW = 64  # each token sees 32 on either side: rows of up to 33 real tokens match RoBERTa


@pytest.fixture(autouse=True)
def no_grad():
    with torch.no_grad():
        yield


def _save_roberta(model_class, path, tokenizer, seed: int = 0):
    config = transformers.RobertaConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=48,
        max_position_embeddings=N_POSITIONS + 2,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = model_class(config)
    with torch.no_grad():  # non-trivial biases and norms, so a swapped weight can't pass unnoticed
        for name, param in model.named_parameters():
            if "LayerNorm" in name or "layer_norm" in name or name.endswith("bias"):
                param.add_(torch.randn_like(param) * 0.1)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    settings = json.loads((path / "tokenizer_config.json").read_text())
    settings["tokenizer_class"] = "RobertaTokenizer"  # as a real RoBERTa folder says
    (path / "tokenizer_config.json").write_text(json.dumps(settings))
    return model.eval()


@pytest.fixture(scope="session")
def tokenizer():
    return train_byte_level_bpe([synthetic_text(2000, seed=3)], vocab_size=400, model_max_length=N_POSITIONS)


@pytest.fixture(scope="session")
def roberta(tmp_path_factory, tokenizer):
    path = tmp_path_factory.mktemp("roberta")
    return path, _save_roberta(transformers.RobertaModel, path, tokenizer)


@pytest.fixture(scope="session")
def converted(tmp_path_factory, roberta):
    dst = tmp_path_factory.mktemp("converted") / "longformer"
    return convert_roberta(roberta[0], dst, max_length=MAX_LENGTH, attention_window=WINDOW)


@pytest.fixture(scope="session")
def longformers(converted):
    """The converted folder loaded by us and by transformers."""
    ours = LongformerModel.from_pretrained(converted).eval()
    return ours, transformers.LongformerModel.from_pretrained(converted).eval()


def _batch(tokenizer, lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded rows of real pieces (<s> ... </s>) of the given lengths."""
    ids = tokenizer.encode(synthetic_text(200, seed=5)).ids[1:-1]
    rows = [[tokenizer.bos_token_id] + ids[: n - 2] + [tokenizer.eos_token_id] for n in lengths]
    width = max(lengths)
    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row)
        attention_mask[i, : len(row)] = 1
    return input_ids, attention_mask


def _max_diff_on_real_tokens(longformers, roberta_model, input_ids, attention_mask, global_mask=None):
    """Largest |Longformer - RoBERTa| over real tokens, for our model and transformers' Longformer."""
    expected = roberta_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    real = attention_mask.bool()
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, global_attention_mask=global_mask)
    outputs = [model(**kwargs).last_hidden_state for model in longformers]
    return [float((out[real] - expected[real]).abs().max()) for out in outputs]


def test_hidden_states_equal_roberta_within_half_a_window(longformers, roberta, tokenizer):
    """Rows of 33 and 20 real tokens (n_real - 1 <= 64 / 2), right-padded, no global tokens."""
    input_ids, attention_mask = _batch(tokenizer, [WINDOW // 2 + 1, 20])
    ours, theirs = _max_diff_on_real_tokens(longformers, roberta[1], input_ids, attention_mask)
    assert ours <= 1e-4 and theirs <= 1e-4, (ours, theirs)


def test_hidden_states_differ_one_token_past_the_condition(longformers, roberta, tokenizer):
    """34 real tokens: the first and last no longer see each other, so the states differ."""
    input_ids, attention_mask = _batch(tokenizer, [WINDOW // 2 + 2])
    ours, theirs = _max_diff_on_real_tokens(longformers, roberta[1], input_ids, attention_mask)
    assert ours > 1e-4 and theirs > 1e-4, (ours, theirs)


def test_global_tokens_widen_the_condition(longformers, roberta, tokenizer):
    """60 real tokens, the first 27 global: the non-global ones (27..59) lie 32 apart at most, and
    global tokens attend with copies of the local projections, so RoBERTa's states come back."""
    input_ids, attention_mask = _batch(tokenizer, [60])
    global_mask = torch.zeros_like(input_ids)
    global_mask[:, :27] = 1
    ours, theirs = _max_diff_on_real_tokens(longformers, roberta[1], input_ids, attention_mask, global_mask)
    assert ours <= 1e-4 and theirs <= 1e-4, (ours, theirs)
    global_mask[:, 26] = 0  # now tokens 26 and 59 are 33 apart and both local
    ours, theirs = _max_diff_on_real_tokens(longformers, roberta[1], input_ids, attention_mask, global_mask)
    assert ours > 1e-4 and theirs > 1e-4, (ours, theirs)


def test_position_table_is_the_tiled_copy(converted, roberta):
    before = load_file(roberta[0] / "model.safetensors")["embeddings.position_embeddings.weight"]
    after = load_file(converted / "model.safetensors")["embeddings.position_embeddings.weight"]
    assert after.shape == (MAX_LENGTH + 2, before.shape[1])
    assert torch.equal(after[:2], before[:2])
    for k in range(MAX_LENGTH):
        assert torch.equal(after[2 + k], before[2 + k % N_POSITIONS]), k
    config = json.loads((converted / "config.json").read_text())
    assert config["max_position_embeddings"] == MAX_LENGTH + 2
    assert config["model_type"] == "longformer" and config["architectures"] == ["LongformerModel"]
    assert config["attention_window"] == [WINDOW, WINDOW]


def test_tile_positions_cuts_the_last_copy_short():
    table = torch.arange(7.0).unsqueeze(1)  # 2 offset rows + learned 2, 3, 4, 5, 6
    assert tile_positions(table, n_offset=2, max_length=12).squeeze(1).tolist() == (
        [0, 1] + [2, 3, 4, 5, 6] * 2 + [2, 3]
    )
    assert tile_positions(table, n_offset=2, max_length=3).squeeze(1).tolist() == [0, 1, 2, 3, 4]


def test_global_projections_equal_the_local_ones(converted):
    state = load_file(converted / "model.safetensors")
    for layer in range(2):
        for name in ("query", "key", "value"):
            for p in ("weight", "bias"):
                prefix = f"encoder.layer.{layer}.attention.self."
                assert torch.equal(state[f"{prefix}{name}_global.{p}"], state[f"{prefix}{name}.{p}"])


def test_transformers_loads_every_weight(converted, roberta):
    model, info = transformers.LongformerModel.from_pretrained(converted, output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == [] and info["mismatched_keys"] == []
    expected = roberta[1].state_dict()
    for key, value in model.state_dict().items():
        if "position_embeddings" not in key and "_global" not in key:
            assert torch.equal(value, expected[key]), key


def test_tokenizer_files_copied_with_the_new_length(converted, roberta, tokenizer):
    text = synthetic_text(50, seed=9)
    ours = LongformerTokenizer.from_pretrained(converted)
    theirs = transformers.AutoTokenizer.from_pretrained(converted)
    source = transformers.AutoTokenizer.from_pretrained(roberta[0])
    assert ours.model_max_length == MAX_LENGTH and theirs.model_max_length == MAX_LENGTH
    assert ours.encode(text).ids == theirs(text)["input_ids"] == source(text)["input_ids"]
    assert {"tokenizer.json", "vocab.json", "merges.txt", "special_tokens_map.json"} <= {
        p.name for p in converted.iterdir()
    }


def test_masked_lm_becomes_longformer_masked_lm(tmp_path, tokenizer):
    roberta_model = _save_roberta(transformers.RobertaForMaskedLM, tmp_path / "roberta", tokenizer, seed=1)
    dst = convert_roberta(tmp_path / "roberta", tmp_path / "lf", max_length=128, attention_window=64)
    assert json.loads((dst / "config.json").read_text())["architectures"] == ["LongformerForMaskedLM"]
    theirs, info = transformers.LongformerForMaskedLM.from_pretrained(dst, output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    input_ids, attention_mask = _batch(tokenizer, [30])
    expected = roberta_model(input_ids=input_ids, attention_mask=attention_mask).logits
    for model in (LongformerForMaskedLM.from_pretrained(dst), theirs):
        logits = model.eval()(input_ids=input_ids, attention_mask=attention_mask).logits
        assert float((logits - expected).abs().max()) <= 1e-4


def test_cli_converts_with_per_layer_windows(tmp_path, roberta):
    dst = tmp_path / "lf"
    args = ["convert-roberta", str(roberta[0]), str(dst), "--max-length", "128"]
    result = CliRunner().invoke(app, [*args, "--attention-window", "16", "--attention-window", "32"])
    assert result.exit_code == 0, result.output
    assert "Longformer checkpoint written" in result.output and "tokenizer_config.json" in result.output
    config = json.loads((dst / "config.json").read_text())
    assert config["attention_window"] == [16, 32] and config["max_position_embeddings"] == 130
    assert LongformerModel.from_pretrained(dst).config.attention_window == [16, 32]
    again = CliRunner().invoke(app, [*args, "--attention-window", "16"])
    assert again.exit_code == 1 and "[LF104]" in again.output and "--force" in again.output
    (dst / "stale.txt").write_text("left from before")
    failed = CliRunner().invoke(app, [*args, "--attention-window", "15", "--force"])
    assert failed.exit_code == 1 and "[LF103]" in failed.output
    assert (dst / "stale.txt").exists(), "--force must not delete anything when the conversion fails"
    forced = CliRunner().invoke(app, [*args, "--attention-window", "16", "--force"])
    assert forced.exit_code == 0, forced.output
    assert json.loads((dst / "config.json").read_text())["attention_window"] == [16, 16]
    assert not (dst / "stale.txt").exists()


def _break(roberta_dir, tmp_path, *, drop=(), add=None, config=None):
    broken = tmp_path / "broken"
    broken.mkdir()
    state = load_file(roberta_dir / "model.safetensors")
    state = {k: v for k, v in state.items() if k not in drop} | (add or {})
    save_file(state, broken / "model.safetensors")
    data = json.loads((roberta_dir / "config.json").read_text()) | (config or {})
    (broken / "config.json").write_text(json.dumps(data))
    return broken


@pytest.mark.parametrize(
    "case,code,words",
    [
        ("no-source", "LF100", "does not exist"),
        ("longformer", "LF101", "Longformer already"),
        ("max-length", "LF102", "positive int"),
        ("odd-window", "LF103", "even int"),
        ("window-list", "LF103", "2 layers"),
        ("same-folder", "LF105", "destroy the source"),
        ("missing-key", "LF106", "encoder.layer.1.output.dense.weight"),
        ("unknown-key", "LF107", "extra.weight (not a weight of LongformerModel)"),
        ("shape", "LF107", "expected (32,)"),
        ("architecture", "LF108", "RobertaForCausalLM"),
        ("relative", "LF108", "relative_key"),
    ],
)
def test_cli_errors_name_the_problem(tmp_path, roberta, converted, case, code, words):
    src, dst, options = roberta[0], tmp_path / "out", []
    if case == "no-source":
        src = tmp_path / "nothing"
    elif case == "longformer":
        src = converted
    elif case == "max-length":
        options = ["--max-length", "0"]
    elif case == "odd-window":
        options = ["--attention-window", "63"]
    elif case == "window-list":
        options = ["--attention-window", "8"] * 3
    elif case == "same-folder":
        dst = src
    elif case == "missing-key":
        src = _break(src, tmp_path, drop=["encoder.layer.1.output.dense.weight"])
    elif case == "unknown-key":
        src = _break(src, tmp_path, add={"extra.weight": torch.zeros(2)})
    elif case == "shape":
        src = _break(src, tmp_path, add={"embeddings.LayerNorm.bias": torch.zeros(3)})
    elif case == "architecture":
        src = _break(src, tmp_path, config={"architectures": ["RobertaForCausalLM"]})
    elif case == "relative":
        src = _break(src, tmp_path, config={"position_embedding_type": "relative_key"})
    result = CliRunner().invoke(app, ["convert-roberta", str(src), str(dst), *options])
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert f"[{code}]" in text and words in text, text
    assert case == "same-folder" or not dst.exists()
