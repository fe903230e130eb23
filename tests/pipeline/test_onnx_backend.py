"""The encoder on onnxruntime (``backend = "onnxruntime"``) and ``python -m spacy_longformer export``:
the same doc annotations as the torch forward, a saved pipeline that carries its graph, no training,
and the export command from a checkpoint and from a saved pipeline."""

import shutil
import sys

import numpy as np
import pytest
import spacy
from spacy.training import Example
from typer.testing import CliRunner

from spacy_longformer.cli import app
from spacy_longformer.ml.encoder_model import OnnxEncoder
from spacy_longformer.random_checkpoint import synthetic_text

pytest.importorskip("onnxruntime")

# Past one window of the tiny checkpoint (126 pieces): several windows, merged per token.
LONG_TEXT = synthetic_text(300, seed=3)
TEXTS = [LONG_TEXT, "Hello world! A short contract.", "naïve café 東京 🙂  tabs\tand\nnewlines ", ""]


def _nlp(name, **settings):
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "longformer_encoder", config={"model": {"name": str(name), "window_overlap": 32, **settings}}
    )
    nlp.initialize()
    return nlp


def _export(*args):
    result = CliRunner().invoke(app, ["export", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def exported(tiny_checkpoint, tmp_path_factory):
    """The CLI's export of the tiny checkpoint, with its int8 copy: (output folder, CLI output)."""
    out = tmp_path_factory.mktemp("onnx")
    result = _export(tiny_checkpoint, out, "--format", "onnx", "--quantize", "int8")
    return out, result.output


@pytest.fixture(scope="module")
def torch_nlp(tiny_checkpoint):
    return _nlp(tiny_checkpoint)


@pytest.fixture(scope="module")
def ort_nlp(tiny_checkpoint, exported):
    return _nlp(tiny_checkpoint, backend="onnxruntime", onnx_path=str(exported[0] / "model.onnx"))


def _max_diff(nlp_a, nlp_b, texts=TEXTS):
    diffs = []
    for a, b in zip(nlp_a.pipe(texts, batch_size=2), nlp_b.pipe(texts, batch_size=2), strict=True):
        assert a._.longformer.input_ids.tolist() == b._.longformer.input_ids.tolist()
        assert a._.longformer.windows == b._.longformer.windows
        assert a.tensor.shape == b.tensor.shape
        diffs.append(float(np.abs(a.tensor - b.tensor).max(initial=0.0)))
        diffs.append(float(np.abs(a._.longformer.last_hidden_state - b._.longformer.last_hidden_state).max()))
    return max(diffs)


def test_cli_export_writes_onnx_int8_config_and_tokenizer(exported):
    out, output = exported
    names = {p.name for p in out.iterdir()}
    assert {"model.onnx", "model.int8.onnx", "config.json", "tokenizer.json"} <= names
    assert (out / "model.int8.onnx").stat().st_size < (out / "model.onnx").stat().st_size
    assert "model.int8.onnx" in output


def test_onnxruntime_pipe_matches_torch_on_a_long_doc(torch_nlp, ort_nlp):
    assert isinstance(ort_nlp.get_pipe("longformer_encoder").model.shims[0]._model, OnnxEncoder)
    assert len(ort_nlp(LONG_TEXT)._.longformer.windows) > 1
    assert _max_diff(torch_nlp, ort_nlp) <= 1e-4


def test_int8_graph_runs_in_the_pipe(tiny_checkpoint, exported, torch_nlp):
    nlp = _nlp(tiny_checkpoint, backend="onnxruntime", onnx_path=str(exported[0] / "model.int8.onnx"))
    doc, expected = nlp(LONG_TEXT), torch_nlp(LONG_TEXT)
    assert doc.tensor.shape == expected.tensor.shape and np.isfinite(doc.tensor).all()
    assert np.abs(doc.tensor - expected.tensor).max() < 0.5  # quantized: close, not exact


def test_without_onnx_path_the_checkpoint_is_exported_at_initialize(tiny_checkpoint, torch_nlp):
    nlp = _nlp(tiny_checkpoint, backend="onnxruntime")
    assert _max_diff(torch_nlp, nlp, TEXTS[:2]) <= 1e-4


def test_saved_pipeline_carries_its_graph(tiny_checkpoint, exported, torch_nlp, tmp_path):
    source, graph = tmp_path / "checkpoint", tmp_path / "graph"
    shutil.copytree(tiny_checkpoint, source)
    shutil.copytree(exported[0], graph)
    nlp = _nlp(source, backend="onnxruntime", onnx_path=str(graph / "model.int8.onnx"))
    expected = [doc.tensor for doc in nlp.pipe(TEXTS)]
    nlp.to_disk(tmp_path / "pipeline")
    shutil.rmtree(source)
    shutil.rmtree(graph)
    saved = tmp_path / "pipeline" / "longformer_encoder" / "encoder"
    assert (saved / "model.onnx").is_file() and not (saved / "model.safetensors").exists()
    loaded = spacy.load(tmp_path / "pipeline")
    for doc, tensor in zip(loaded.pipe(TEXTS), expected, strict=True):
        np.testing.assert_array_equal(doc.tensor, tensor)
    data = loaded.get_pipe("longformer_encoder").to_bytes()
    again = spacy.blank("en")
    config = {"model": {"name": "/nowhere", "backend": "onnxruntime", "window_overlap": 32}}
    again.add_pipe("longformer_encoder", config=config).from_bytes(data)
    # int8 quantizes activations per batch, so compare in the same batches
    for doc, tensor in zip(again.pipe(TEXTS), expected, strict=True):
        np.testing.assert_array_equal(doc.tensor, tensor)
    # the torch backend can't run a graph: a clear error, not a crash
    with pytest.raises(ValueError, match="LF198"):
        spacy.load(tmp_path / "pipeline", config={"components.longformer_encoder.model.backend": "torch"})
    # exporting the saved onnxruntime pipeline hands its graph on
    _export(tmp_path / "pipeline", tmp_path / "again")
    assert (tmp_path / "again" / "model.onnx").read_bytes() == (saved / "model.onnx").read_bytes()


def test_training_is_a_clear_error(ort_nlp):
    examples = [Example.from_dict(ort_nlp.make_doc("A short contract."), {})]
    with pytest.raises(ValueError, match=r"LF193.*backend = \"torch\""):
        ort_nlp.update(examples)


def test_export_from_a_saved_pipeline(torch_nlp, tmp_path, caplog):
    torch_nlp.to_disk(tmp_path / "pipeline")
    with caplog.at_level("WARNING"):
        result = _export(tmp_path / "pipeline", tmp_path / "out", "--format", "onnx")
    assert "LFW002" not in caplog.text  # the saved encoder has no pooler, and the graph needs none
    assert "longformer_encoder" in result.output
    assert {"model.onnx", "config.json", "tokenizer.json"} <= {p.name for p in (tmp_path / "out").iterdir()}
    nlp = _nlp(tmp_path / "out", backend="onnxruntime")  # name = the export folder: its model.onnx
    assert _max_diff(torch_nlp, nlp, TEXTS[:2]) <= 1e-4


def test_a_saved_torch_pipeline_loads_on_its_own_int8_graph(perturbed_checkpoint, exported, tmp_path):
    """A fine-tuned pipeline served in int8: export it, then point `onnx_path` at the graph when
    loading. A graph of other weights (here the tiny checkpoint's, same config) is refused."""
    _nlp(perturbed_checkpoint).to_disk(tmp_path / "pipeline")
    _export(tmp_path / "pipeline", tmp_path / "int8", "--quantize", "int8")
    section = "components.longformer_encoder.model"
    torch_docs = list(spacy.load(tmp_path / "pipeline").pipe(TEXTS[:2]))
    fp32 = spacy.load(tmp_path / "pipeline", config={f"{section}.backend": "onnxruntime"})
    overrides = {
        f"{section}.backend": "onnxruntime",
        f"{section}.onnx_path": str(tmp_path / "int8/model.int8.onnx"),
    }
    int8 = spacy.load(tmp_path / "pipeline", config=overrides)
    for doc, fp32_doc, torch_doc in zip(int8.pipe(TEXTS[:2]), fp32.pipe(TEXTS[:2]), torch_docs, strict=True):
        assert np.abs(fp32_doc.tensor - torch_doc.tensor).max() <= 1e-4
        assert 1e-5 < np.abs(doc.tensor - torch_doc.tensor).max() < 0.5  # quantized: close, not exact
    int8.to_disk(tmp_path / "served")  # what `spacy package` ships: the int8 graph, no torch weights
    saved = tmp_path / "served" / "longformer_encoder" / "encoder" / "model.onnx"
    assert saved.stat().st_size == (tmp_path / "int8" / "model.int8.onnx").stat().st_size
    other = {**overrides, f"{section}.onnx_path": str(exported[0] / "model.int8.onnx")}
    with pytest.raises(ValueError, match=r"LF207.*holds other weights.*--component NAME \[--quantize int8\]"):
        spacy.load(tmp_path / "pipeline", config=other)


def test_cli_errors(tiny_checkpoint, tmp_path):
    runner = CliRunner()
    for option, value in (("--format", "tflite"), ("--dtype", "fp16"), ("--quantize", "int4")):
        result = runner.invoke(app, ["export", str(tiny_checkpoint), str(tmp_path), option, value])
        assert result.exit_code == 1 and "LF199" in result.output, result.output
    spacy.blank("en").to_disk(tmp_path / "blank")
    result = runner.invoke(app, ["export", str(tmp_path / "blank"), str(tmp_path / "out")])
    assert result.exit_code == 1 and "LF174" in result.output, result.output
    result = runner.invoke(app, ["export", str(tmp_path / "nothing"), str(tmp_path / "out")])
    assert result.exit_code == 1 and "LF191" in result.output, result.output


def test_missing_onnxruntime_names_the_install(tiny_checkpoint, exported, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now fails
    with pytest.raises(ImportError, match=r"LF194.*pip install onnxruntime"):
        _nlp(tiny_checkpoint, backend="onnxruntime", onnx_path=str(exported[0] / "model.onnx"))


def test_bad_backend_and_graph_are_clear_errors(tiny_checkpoint, tmp_path):
    with pytest.raises(ValueError, match="LF123.*backend"):
        _nlp(tiny_checkpoint, backend="tensorrt")
    with pytest.raises(ValueError, match="LF195"):
        _nlp(tiny_checkpoint, backend="onnxruntime", onnx_path=str(tmp_path / "missing.onnx"))
    (tmp_path / "bad.onnx").write_bytes(b"not a graph")
    with pytest.raises(ValueError, match="LF195"):
        _nlp(tiny_checkpoint, backend="onnxruntime", onnx_path=str(tmp_path / "bad.onnx"))
