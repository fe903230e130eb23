"""The encoder's ``dtype`` (issue 21): bfloat16 / float16 inference in the spaCy pipe.

The weights run in the half dtype, the states leave the encoder as float32, saved pipelines keep
float32 weights (the dtype is a runtime setting of the config), and training says to use
``mixed_precision`` instead. Tolerances are a few times the error measured on the perturbed
checkpoint (every Linear weight x3, biases and LayerNorms perturbed).
"""

import numpy as np
import pytest
import spacy
import srsly
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import load_file
from spacy.training import Example

from spacy_longformer.random_checkpoint import synthetic_text

LONG_TEXT = synthetic_text(400, seed=3)  # 3+ windows of the tiny checkpoint's 126 pieces
# Measured max |half - float32| over doc.tensor / piece states / window states of LONG_TEXT (and
# nlp.pipe of 3 docs) on the perturbed checkpoint, torch 2.13 CPU: bfloat16 0.051, float16 0.0079,
# for states up to 5 in absolute value (row norms ~5.6). Tolerances ~3x.
TOLERANCE = {"bfloat16": 0.15, "float16": 0.025}


def _encoder_nlp(checkpoint, **model):
    nlp = spacy.blank("en")
    nlp.add_pipe("longformer_encoder", config={"model": {"name": str(checkpoint), **model}})
    nlp.initialize()
    return nlp


def _shim(nlp, name="longformer_encoder"):
    return nlp.get_pipe(name).model.shims[0]


def _weight_dtypes(nlp):
    return {p.dtype for p in _shim(nlp)._model.parameters()}


@pytest.fixture(scope="module")
def float32_nlp(perturbed_checkpoint):
    return _encoder_nlp(perturbed_checkpoint)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_dtype_states_are_float32_and_close_to_float32_on_a_long_doc(
    float32_nlp, perturbed_checkpoint, dtype
):
    """float16 runs on the CPU too with this torch (2.13); bfloat16 is what CPUs are fast at."""
    nlp = _encoder_nlp(perturbed_checkpoint, dtype=dtype)
    assert _weight_dtypes(nlp) == {getattr(torch, dtype)}
    expected, doc = float32_nlp(LONG_TEXT), nlp(LONG_TEXT)
    assert len(doc._.longformer.windows) > 2
    pairs = [
        (doc.tensor, expected.tensor),
        (doc._.longformer.last_hidden_state, expected._.longformer.last_hidden_state),
        (doc._.longformer.window_states, expected._.longformer.window_states),
    ]
    for ours, theirs in pairs:
        assert ours.dtype == np.float32 and ours.shape == theirs.shape
        assert np.isfinite(ours).all()
        assert np.abs(ours - theirs).max() <= TOLERANCE[dtype]
    # nlp.pipe batches windows of several docs: still float32, still close.
    texts = [LONG_TEXT, "A short one.", synthetic_text(60, seed=5)]
    for ours, theirs in zip(nlp.pipe(texts), float32_nlp.pipe(texts), strict=True):
        assert ours.tensor.dtype == np.float32
        assert np.abs(ours.tensor - theirs.tensor).max() <= TOLERANCE[dtype]


def test_saved_bfloat16_pipeline_has_float32_weights_and_loads_back_bfloat16(perturbed_checkpoint, tmp_path):
    nlp = _encoder_nlp(perturbed_checkpoint, dtype="bfloat16")
    expected = nlp(LONG_TEXT).tensor
    nlp.to_disk(tmp_path / "pipeline")
    weights = load_file(tmp_path / "pipeline" / "longformer_encoder" / "encoder" / "model.safetensors")
    assert {w.dtype for w in weights.values() if w.is_floating_point()} == {torch.float32}
    assert _weight_dtypes(nlp) == {torch.bfloat16}  # still running bf16
    msg = srsly.msgpack_loads(srsly.msgpack_loads(nlp.get_pipe("longformer_encoder").to_bytes())["encoder"])
    state = load_safetensors(srsly.msgpack_loads(msg["state"])["weights"])
    assert {w.dtype for w in state.values() if w.is_floating_point()} == {torch.float32}

    loaded = spacy.load(tmp_path / "pipeline")
    assert loaded.config["components"]["longformer_encoder"]["model"]["dtype"] == "bfloat16"
    assert _shim(loaded).dtype == "bfloat16"
    assert _weight_dtypes(loaded) == {torch.bfloat16}
    np.testing.assert_array_equal(loaded(LONG_TEXT).tensor, expected)  # bf16 -> fp32 -> bf16 is exact

    again = spacy.blank("en")
    again.add_pipe("longformer_encoder", config={"model": {"name": "/nowhere", "dtype": "bfloat16"}})
    again.get_pipe("longformer_encoder").from_bytes(nlp.get_pipe("longformer_encoder").to_bytes())
    np.testing.assert_array_equal(again(LONG_TEXT).tensor, expected)

    # The same folder served in float32: the dtype is the config's, not the weights'.
    override = {"components": {"longformer_encoder": {"model": {"dtype": "float32"}}}}
    as_float32 = spacy.load(tmp_path / "pipeline", config=override)
    assert _weight_dtypes(as_float32) == {torch.float32}
    assert as_float32(LONG_TEXT).tensor.dtype == np.float32


def test_training_with_a_half_dtype_says_to_use_mixed_precision(perturbed_checkpoint, hf_heads):
    nlp = _encoder_nlp(perturbed_checkpoint, dtype="bfloat16")
    with pytest.raises(
        ValueError, match=r"LF200.*'bfloat16'.*components\.longformer_encoder\.model.*mixed_precision"
    ):
        nlp.get_pipe("longformer_encoder").model.begin_update([nlp.make_doc("Some text.")])
    textcat = spacy.blank("en")
    encoder = {"name": str(hf_heads["textcat"]), "dtype": "float16"}
    textcat.add_pipe("longformer_textcat", config={"model": {"encoder": encoder}})
    textcat.initialize()
    example = Example.from_dict(
        textcat.make_doc("Good."), {"cats": {"POSITIVE": 1.0, "NEGATIVE": 0.0, "NEUTRAL": 0.0}}
    )
    with pytest.raises(ValueError, match=r"LF200.*'float16'.*mixed_precision"):
        textcat.update([example])


@pytest.mark.parametrize("value", ["fp16", "bf16", "float64", "half"])
def test_bad_dtype_raises_lf123(perturbed_checkpoint, value):
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match=r"LF123.*`dtype` must be one of 'float32', 'bfloat16', 'float16'"):
        nlp.add_pipe(
            "longformer_encoder", config={"model": {"name": str(perturbed_checkpoint), "dtype": value}}
        )


def test_onnxruntime_backend_rejects_a_half_dtype(perturbed_checkpoint):
    nlp = spacy.blank("en")
    config = {"name": str(perturbed_checkpoint), "backend": "onnxruntime", "dtype": "bfloat16"}
    with pytest.raises(
        ValueError,
        match=r"LF123.*`dtype` must be 'float32' with backend = 'onnxruntime'.*need backend = 'torch'",
    ):
        nlp.add_pipe("longformer_encoder", config={"model": config})


def test_float16_without_cpu_kernels_says_to_use_bfloat16(perturbed_checkpoint, monkeypatch):
    """Older torch builds lack float16 kernels on the CPU ("not implemented for 'Half'")."""
    nlp = _encoder_nlp(perturbed_checkpoint, dtype="float16")
    model = _shim(nlp)._model

    def no_half_kernels(*args, **kwargs):
        raise RuntimeError("\"addmm_impl_cpu_\" not implemented for 'Half'")

    monkeypatch.setattr(model, "forward", no_half_kernels)
    with pytest.raises(ValueError, match=r"LF201.*not implemented for 'Half'.*dtype = \"bfloat16\""):
        nlp("Some text.")


@pytest.mark.parametrize("native", [False, True])
def test_half_dtype_on_a_cpu_without_its_instructions_warns_once(
    perturbed_checkpoint, monkeypatch, caplog, native
):
    """Without AVX512-BF16/AMX, bfloat16 matmuls fall back to code ~10x slower than float32."""
    from spacy_longformer.ml import encoder_model

    monkeypatch.setattr(encoder_model, "_warned_slow", set())
    monkeypatch.setattr(encoder_model, "_native_on_cpu", lambda dtype: native)
    nlp = _encoder_nlp(perturbed_checkpoint, dtype="bfloat16")
    with caplog.at_level("WARNING", logger="spacy_longformer"):
        nlp("Some text.")
        nlp("Some more text.")
    warned = [r for r in caplog.records if "LFW012" in r.getMessage()]
    if native:
        assert not warned
    else:
        assert len(warned) == 1
        message = warned[0].getMessage()
        assert "'bfloat16' on a CPU without native bfloat16" in message
        assert '[components.longformer_encoder.model] dtype = "float32"' in message


# 20 synthetic docs, 1 to 3 windows each.
TASK_TEXTS = [synthetic_text(20 + 17 * i, seed=100 + i) for i in range(20)]


def _task_nlp(factory, path, dtype):
    nlp = spacy.blank("en")
    nlp.add_pipe(factory, config={"model": {"encoder": {"name": str(path), "dtype": dtype}}})
    nlp.initialize()  # no examples: labels and head come from the checkpoint
    return nlp


def test_task_predictions_agree_in_bfloat16(hf_heads):
    """The fine-tuned textcat and NER heads (``conftest.hf_heads``), not trained here: their
    predictions on 20 docs (4,261 tokens) in bfloat16 against float32. Measured (torch 2.13 CPU):
    textcat argmax 20/20 docs; NER tags 4,244/4,261 tokens (99.60%), entities 3,676 the same of
    3,691 (float32) and 3,692 (bfloat16), i.e. F 99.6 against float32's. What flips are the
    random head's near-ties (it tags most tokens as entities), and which near-ties flip depends on
    the CPU's bf16 kernels: the bars leave room for that (one doc of 20, 1% of the tokens) while a
    broken cast (a wrong dtype, a lost scale) flips far more."""
    agreement = {}
    for factory, kind in (("longformer_textcat", "textcat"), ("longformer_ner", "ner")):
        full, half = (
            list(_task_nlp(factory, hf_heads[kind], dtype).pipe(TASK_TEXTS))
            for dtype in ("float32", "bfloat16")
        )
        pairs = list(zip(full, half, strict=True))
        if kind == "textcat":
            same = [max(a.cats, key=a.cats.get) == max(b.cats, key=b.cats.get) for a, b in pairs]
        else:
            assert any(doc.ents for doc in full), "the random head should predict some entities"
            same = [
                (x.ent_iob_, x.ent_type_) == (y.ent_iob_, y.ent_type_)
                for a, b in pairs
                for x, y in zip(a, b, strict=True)
            ]
        agreement[kind] = sum(same) / len(same)
    assert agreement["textcat"] >= 0.95 and agreement["ner"] >= 0.99, agreement
