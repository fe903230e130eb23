"""ONNX export (issue 21): one exported graph, run by onnxruntime, gives the eager model's numbers
at every length, batch and count of global tokens.

The expectation is our eager ``LongformerModel`` (itself held to transformers by
``test_encoder_parity.py``) and, for one input, transformers itself. The traceable attention path
is also held to the eager layer without onnxruntime, for windows the checkpoint doesn't have.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from spacy_longformer.model import (
    LongformerConfig,
    LongformerForMultipleChoice,
    LongformerForQuestionAnswering,
    LongformerForSequenceClassification,
    LongformerModel,
)
from spacy_longformer.model.attention import (
    AttentionMask,
    LongformerSelfAttention,
    TraceableMask,
    traceable_self_attention,
)
from spacy_longformer.model.export import export_onnx, load_for_export, quantize_int8

from .oracle import perturb_

TOLERANCE = 1e-4  # float32, onnxruntime CPU against eager PyTorch
WINDOW = 16  # the checkpoint's largest window (layers: 8, 16)
MAX_TOKENS = 128  # its max_position_embeddings 130, pad id 1
# 1, around each layer's window, ~5 windows, and the longest the checkpoint holds.
LENGTHS = [1, 7, 8, 9, WINDOW - 1, WINDOW, WINDOW + 1, 5 * WINDOW, MAX_TOKENS]
MANY_GLOBAL = WINDOW + 4  # more global tokens than a window holds


@pytest.fixture(scope="module")
def onnx_dir(perturbed_checkpoint, tmp_path_factory):
    """The perturbed encoder, exported once for the whole module."""
    out = tmp_path_factory.mktemp("onnx-export")
    export_onnx(perturbed_checkpoint, out)
    return out


@pytest.fixture(scope="module")
def session(onnx_dir):
    return _session(onnx_dir / "model.onnx")


@pytest.fixture(scope="module")
def eager(perturbed_checkpoint):
    return LongformerModel.from_pretrained(perturbed_checkpoint).eval()


def _session(path):
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _batch(lengths: list[int], seq_len: int, n_global: int, *, seed: int, vocab: int = 600):
    """Rows of ``lengths`` real pieces padded to ``seq_len``; ``n_global`` globals per row (the
    first piece, then random ones; all pieces when a row is shorter)."""
    gen = torch.Generator().manual_seed(seed)
    batch = len(lengths)
    input_ids = torch.randint(3, vocab, (batch, seq_len), generator=gen)
    attention_mask = torch.zeros(batch, seq_len, dtype=torch.long)
    global_mask = torch.zeros(batch, seq_len, dtype=torch.long)
    for row, length in enumerate(lengths):
        attention_mask[row, :length] = 1
        input_ids[row, length:] = 1  # the pad id
        if n_global:
            picked = torch.randperm(length - 1, generator=gen)[: n_global - 1] + 1
            global_mask[row, 0] = 1
            global_mask[row, picked] = 1
    return input_ids, attention_mask, global_mask


def _run(session, inputs) -> list[np.ndarray]:
    names = ("input_ids", "attention_mask", "global_attention_mask")
    return session.run(None, {name: t.numpy() for name, t in zip(names, inputs, strict=True)})


def _max_diff(got: np.ndarray, expected: torch.Tensor) -> float:
    return float(np.abs(got - expected.detach().numpy()).max())


def test_export_writes_model_config_and_tokenizer(onnx_dir, perturbed_checkpoint):
    onnx = pytest.importorskip("onnx")
    assert json.loads((onnx_dir / "config.json").read_text()) == json.loads(
        (perturbed_checkpoint / "config.json").read_text()
    )
    assert (onnx_dir / "tokenizer.json").read_bytes() == (
        perturbed_checkpoint / "tokenizer.json"
    ).read_bytes()
    graph = onnx.load(str(onnx_dir / "model.onnx")).graph
    for value in graph.input:
        assert value.type.tensor_type.elem_type == onnx.TensorProto.INT64
        assert [d.dim_param for d in value.type.tensor_type.shape.dim] == ["batch", "sequence"]
    assert [value.name for value in graph.input] == ["input_ids", "attention_mask", "global_attention_mask"]
    assert [value.name for value in graph.output] == ["last_hidden_state"]


@pytest.mark.parametrize("n_global", [0, 1, MANY_GLOBAL])
@pytest.mark.parametrize("seq_len", LENGTHS)
def test_one_row_matches_eager(session, eager, seq_len, n_global):
    inputs = _batch([seq_len], seq_len, min(n_global, seq_len), seed=seq_len)
    with torch.no_grad():
        expected = eager(*inputs).last_hidden_state
    (got,) = _run(session, inputs)
    assert got.shape == tuple(expected.shape)
    assert _max_diff(got, expected) <= TOLERANCE


@pytest.mark.parametrize("n_global", [0, 1, MANY_GLOBAL])
@pytest.mark.parametrize("seq_len", LENGTHS)
def test_padded_batch_matches_eager(session, eager, seq_len, n_global):
    """Three rows of different lengths; rows may differ in their counts of global tokens too."""
    lengths = [seq_len, max(1, seq_len // 2), max(1, seq_len - 3)]
    counts = [min(n_global, length) for length in lengths]
    inputs = [
        torch.cat(parts)
        for parts in zip(
            *(
                _batch([length], seq_len, count, seed=seq_len + i)
                for i, (length, count) in enumerate(zip(lengths, counts, strict=True))
            ),
            strict=True,
        )
    ]
    with torch.no_grad():
        expected = eager(*inputs).last_hidden_state
    (got,) = _run(session, inputs)
    # Padding positions too: both paths zero a padding query's attention, the rest is per token.
    assert _max_diff(got, expected) <= TOLERANCE


def test_global_from_attention_mask_2(session, eager):
    """attention_mask 2 also means global, as in the eager model and transformers."""
    input_ids, attention_mask, _ = _batch([40, 25], 40, 0, seed=3)
    attention_mask[:, [0, 5]] = 2
    no_global = torch.zeros_like(input_ids)
    with torch.no_grad():
        expected = eager(input_ids, attention_mask, no_global).last_hidden_state
    (got,) = _run(session, (input_ids, attention_mask, no_global))
    assert _max_diff(got, expected) <= TOLERANCE


def test_matches_transformers(session, perturbed_checkpoint):
    transformers = pytest.importorskip("transformers")
    model = transformers.LongformerModel.from_pretrained(perturbed_checkpoint).eval()
    inputs = _batch([5 * WINDOW, 3 * WINDOW + 5], 5 * WINDOW, 3, seed=7)
    with torch.no_grad():
        expected = model(*inputs).last_hidden_state
    (got,) = _run(session, inputs)
    real = inputs[1].bool().numpy()
    assert float(np.abs(got - expected.numpy())[real].max()) <= TOLERANCE


@pytest.fixture(scope="module")
def head_models(tiny_checkpoint):
    """Perturbed random heads on the tiny encoder's config."""
    config = LongformerConfig.from_json_file(tiny_checkpoint / "config.json")
    config.id2label = {0: "A", 1: "B", 2: "C"}
    models = {}
    for cls in (LongformerForQuestionAnswering, LongformerForSequenceClassification):
        torch.manual_seed(0)
        models[cls] = perturb_(cls(config), seed=1).eval()
    return models


@pytest.mark.parametrize(
    "cls,names,from_folder",
    [
        (LongformerForQuestionAnswering, ["start_logits", "end_logits"], True),
        (LongformerForSequenceClassification, ["logits"], False),
    ],
)
def test_head_outputs_match_eager(head_models, tmp_path, cls, names, from_folder):
    """A head checkpoint's folder (its config.json names the head) or a head module: the graph
    also gives the head's outputs, under transformers' names."""
    model = head_models[cls]
    if from_folder:
        model.save_pretrained(tmp_path / "checkpoint")
        export_onnx(tmp_path / "checkpoint", tmp_path / "onnx")
    else:
        export_onnx(model, tmp_path / "onnx")
        assert model.training is False
    session = _session(tmp_path / "onnx" / "model.onnx")
    assert [o.name for o in session.get_outputs()] == ["last_hidden_state", *names]
    config = json.loads((tmp_path / "onnx" / "config.json").read_text())
    assert config["architectures"] == [cls.hf_architecture]
    for seq_len, n_global in ((9, 1), (70, MANY_GLOBAL)):
        inputs = _batch([seq_len, max(1, seq_len - 6)], seq_len, n_global, seed=seq_len)
        with torch.no_grad():
            out = model(*inputs)
            hidden = model.longformer(*inputs).last_hidden_state
        got = _run(session, inputs)
        assert _max_diff(got[0], hidden) <= TOLERANCE
        for name, array in zip(names, got[1:], strict=True):
            assert array.shape == tuple(out[name].shape)
            assert _max_diff(array, out[name]) <= TOLERANCE


def test_other_heads_export_their_encoder(tiny_checkpoint, tmp_path):
    """A checkpoint of a head the graph lacks (multiple choice) exports its encoder alone."""
    config = LongformerConfig.from_json_file(tiny_checkpoint / "config.json")
    LongformerForMultipleChoice(config).save_pretrained(tmp_path)
    assert type(load_for_export(tmp_path)) is LongformerModel


def test_unsupported_head_is_a_clear_error(tiny_checkpoint, tmp_path):
    config = LongformerConfig.from_json_file(tiny_checkpoint / "config.json")
    with pytest.raises(ValueError, match=r"\[LF190\].*LongformerForMultipleChoice"):
        export_onnx(LongformerForMultipleChoice(config), tmp_path)


def test_folder_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(OSError, match=r"\[LF191\]"):
        export_onnx(tmp_path, tmp_path / "out")


def test_int8_quantized_model_runs_close(onnx_dir, session, tmp_path):
    """Dynamic int8 (weights int8, activations quantized at run time): far from exact, but near."""
    pytest.importorskip("onnxruntime")
    quantized = quantize_int8(onnx_dir / "model.onnx", tmp_path / "model.int8.onnx")
    inputs = _batch([80, 47, 12], 80, 3, seed=11)
    (expected,) = _run(session, inputs)
    (got,) = _run(_session(quantized), inputs)
    assert got.shape == expected.shape
    assert np.isfinite(got).all()
    # Measured (onnxruntime 1.32): max abs diff 0.039, mean 0.0055, on states of mean |x| 0.78.
    assert float(np.abs(got - expected).max()) <= 0.15
    assert quantized.stat().st_size < (onnx_dir / "model.onnx").stat().st_size


@pytest.mark.slow
def test_dynamo_export_matches_eager(perturbed_checkpoint, eager, tmp_path):
    """The same graph through torch.export (about 40 s here, so only with -m slow)."""
    pytest.importorskip("onnxscript")
    export_onnx(perturbed_checkpoint, tmp_path, dynamo=True)
    session = _session(tmp_path / "model.onnx")
    for seq_len, n_global in ((1, 1), (WINDOW + 1, 0), (MAX_TOKENS, MANY_GLOBAL)):
        for lengths in ([seq_len], [seq_len, max(1, seq_len // 2), max(1, seq_len - 3)]):
            inputs = [
                torch.cat(parts)
                for parts in zip(
                    *(_batch([n], seq_len, min(n_global, n), seed=n + i) for i, n in enumerate(lengths)),
                    strict=True,
                )
            ]
            with torch.no_grad():
                expected = eager(*inputs).last_hidden_state
            (got,) = _run(session, inputs)
            assert _max_diff(got, expected) <= TOLERANCE


@pytest.mark.parametrize("window", [2, 4, 6, 10])
@pytest.mark.parametrize("seq_len", [1, 3, 6, 23])
def test_traceable_attention_equals_eager(window, seq_len):
    """The traced path alone (no onnxruntime), at windows and lengths around each other."""
    torch.manual_seed(window * 100 + seq_len)
    config = LongformerConfig(
        hidden_size=12, num_attention_heads=3, num_hidden_layers=1, attention_window=window, vocab_size=10
    )
    layer = perturb_(LongformerSelfAttention(config, layer=0), seed=0).eval()
    hidden = torch.randn(3, seq_len, 12)
    attention_mask = torch.ones(3, seq_len, dtype=torch.long)
    attention_mask[1, seq_len // 2 + 1 :] = 0
    global_mask = (torch.rand(3, seq_len) < 0.3).long()
    global_mask[2] = 1
    with torch.no_grad():
        expected = layer(hidden, AttentionMask.from_masks(attention_mask, global_mask)).context
        got = traceable_self_attention(layer, hidden, TraceableMask.from_masks(attention_mask, global_mask))
    assert float((got - expected).abs().max()) <= 1e-5
