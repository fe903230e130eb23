"""Export (issue 21): one exported graph, run by onnxruntime or as a ``torch.export`` program,
gives the eager model's numbers at every length, batch and count of global tokens.

The expectation is our eager ``LongformerModel`` (itself held to transformers by
``test_encoder_parity.py``) and, for one input, transformers itself. The traceable attention path
is also held to the eager layer without onnxruntime, for windows the checkpoint doesn't have.
bfloat16 programs are held to the eager model in bfloat16 and, within the spaCy encoder's bfloat16
bound (``tests/pipeline/test_encoder_dtype.py``), to float32.
"""

from __future__ import annotations

import json
from functools import partial

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from spacy_longformer.cli import app
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
from spacy_longformer.model.export import (
    export_onnx,
    export_torch,
    load_exported,
    load_for_export,
    quantize_int8,
)

from .oracle import perturb_

TOLERANCE = 1e-4  # float32, onnxruntime CPU or the torch.export program against eager PyTorch
# Measured (torch 2.13 CPU) over LENGTHS x 0/1/many globals x 1/3 rows, states up to ~4.5 in
# absolute value: the bf16 program against eager bf16 0.031 (one bf16 step at 4-8), against
# float32 0.055 (eager bf16 too: 0.055). Bounds: a few steps; the float32 one is
# test_encoder_dtype.py's for bfloat16.
BF16_TOLERANCE = {"eager bfloat16": 0.1, "float32": 0.15}
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


@pytest.fixture(scope="module")
def torch_program_dir(perturbed_checkpoint, tmp_path_factory):
    """The perturbed encoder through ``torch.export`` (float32), exported once for the module."""
    out = tmp_path_factory.mktemp("torch-export")
    export_torch(perturbed_checkpoint, out)
    return out


@pytest.fixture(scope="module")
def torch_program(torch_program_dir):
    """Its program, loaded once (loading parses the graph's symbolic shapes: seconds)."""
    return load_exported(torch_program_dir / "model.pt2")


@pytest.fixture(scope="module", params=["onnxruntime", "torch.export"])
def run_export(request):
    """The float32 export, run by onnxruntime or as the ``torch.export`` program: inputs -> arrays."""
    if request.param == "onnxruntime":
        return partial(_run, request.getfixturevalue("session"))
    return partial(_run_program, request.getfixturevalue("torch_program"))


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


def _run_program(program, inputs) -> list[np.ndarray]:
    outputs = program(*inputs)
    assert all(out.dtype == torch.float32 for out in outputs)
    return [out.numpy() for out in outputs]


def _max_diff(got: np.ndarray, expected: torch.Tensor) -> float:
    return float(np.abs(got - expected.detach().float().numpy()).max())


def _rows(lengths: list[int], seq_len: int, n_global: int, *, seed: int) -> list[torch.Tensor]:
    """``_batch`` row by row, so that rows may differ in their counts of global tokens too."""
    parts = (_batch([n], seq_len, min(n_global, n), seed=seed + i) for i, n in enumerate(lengths))
    return [torch.cat(column) for column in zip(*parts, strict=True)]


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
def test_one_row_matches_eager(run_export, eager, seq_len, n_global):
    """Lengths the export never saw (its example has 35), 1 and multiples of 8 and 16 included."""
    inputs = _batch([seq_len], seq_len, min(n_global, seq_len), seed=seq_len)
    with torch.no_grad():
        expected = eager(*inputs).last_hidden_state
    (got,) = run_export(inputs)
    assert got.shape == tuple(expected.shape)
    assert _max_diff(got, expected) <= TOLERANCE


@pytest.mark.parametrize("n_global", [0, 1, MANY_GLOBAL])
@pytest.mark.parametrize("seq_len", LENGTHS)
def test_padded_batch_matches_eager(run_export, eager, seq_len, n_global):
    """Three rows of different lengths; rows may differ in their counts of global tokens too."""
    inputs = _rows([seq_len, max(1, seq_len // 2), max(1, seq_len - 3)], seq_len, n_global, seed=seq_len)
    with torch.no_grad():
        expected = eager(*inputs).last_hidden_state
    (got,) = run_export(inputs)
    # Padding positions too: both paths zero a padding query's attention, the rest is per token.
    assert _max_diff(got, expected) <= TOLERANCE


def test_global_from_attention_mask_2(run_export, eager):
    """attention_mask 2 also means global, as in the eager model and transformers."""
    input_ids, attention_mask, _ = _batch([40, 25], 40, 0, seed=3)
    attention_mask[:, [0, 5]] = 2
    no_global = torch.zeros_like(input_ids)
    with torch.no_grad():
        expected = eager(input_ids, attention_mask, no_global).last_hidden_state
    (got,) = run_export((input_ids, attention_mask, no_global))
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


def test_torch_export_writes_program_config_and_tokenizer(
    torch_program_dir, torch_program, perturbed_checkpoint
):
    assert json.loads((torch_program_dir / "config.json").read_text()) == json.loads(
        (perturbed_checkpoint / "config.json").read_text()
    )
    assert (torch_program_dir / "tokenizer.json").read_bytes() == (
        perturbed_checkpoint / "tokenizer.json"
    ).read_bytes()
    inputs = {node.name: node.meta["val"] for node in torch_program.graph.find_nodes(op="placeholder")}
    assert list(inputs) == ["input_ids", "attention_mask", "global_attention_mask"]
    for value in inputs.values():
        assert value.dtype == torch.int64
        assert all(isinstance(size, torch.SymInt) for size in value.shape)  # batch and seq dynamic


def test_torch_program_needs_none_of_our_model_code(torch_program):
    """``load_exported`` gives torch's own graph module: none of our classes, nothing to train."""
    assert isinstance(torch_program, torch.fx.GraphModule)
    assert not [m for m in torch_program.modules() if type(m).__module__.startswith("spacy_longformer")]
    assert not [name for name, p in torch_program.named_parameters() if p.requires_grad]


def test_torch_program_at_every_length(torch_program, eager):
    """Every length up to three of the graph's row multiples (16 here: every remainder thrice) and
    the table's end, two rows (one padded, one without global tokens): ``torch.export`` keeps
    guards on the length, and one that fails at some lengths only (say, multiples of a block)
    shows only there."""
    worst = 0.0
    for seq_len in [*range(1, 3 * 16 + 1), MAX_TOKENS - 1, MAX_TOKENS]:
        inputs = _rows([seq_len, max(1, seq_len - 5)], seq_len, 0, seed=seq_len)
        inputs[2][0, : min(3, seq_len)] = 1
        with torch.no_grad():
            expected = eager(*inputs).last_hidden_state
        worst = max(worst, _max_diff(torch_program(*inputs)[0].numpy(), expected))
    assert worst <= TOLERANCE


@pytest.fixture(scope="module")
def bf16_cli_export(perturbed_checkpoint, tmp_path_factory):
    """``python -m spacy_longformer export CHECKPOINT OUT --format torch-export --dtype bf16``:
    (OUT, what it printed)."""
    out = tmp_path_factory.mktemp("torch-export-bf16")
    args = ["export", str(perturbed_checkpoint), str(out), "--format", "torch-export", "--dtype", "bf16"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out, result.output


@pytest.fixture(scope="module")
def bf16_program(bf16_cli_export):
    return load_exported(bf16_cli_export[0])  # the folder, as the fp32 one is loaded by its file


@pytest.fixture(scope="module")
def eager_bf16(perturbed_checkpoint):
    return LongformerModel.from_pretrained(perturbed_checkpoint).eval().to(torch.bfloat16)


def test_cli_torch_export_bf16_writes_a_bf16_program(bf16_cli_export, bf16_program, torch_program_dir):
    out, output = bf16_cli_export
    assert {"model.pt2", "config.json", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    flat = " ".join(output.split())  # wasabi wraps long lines
    assert "model.pt2" in flat and "bf16" in flat and "torch.export.load(" in flat
    assert {p.dtype for p in bf16_program.parameters()} == {torch.bfloat16}
    assert (out / "model.pt2").stat().st_size < (torch_program_dir / "model.pt2").stat().st_size


@pytest.mark.parametrize(
    "seq_len,n_global", [(1, 1), (WINDOW, 0), (WINDOW + 1, 1), (5 * WINDOW, MANY_GLOBAL)]
)
def test_bf16_program_matches_eager_bf16(bf16_program, eager_bf16, eager, seq_len, n_global):
    """bf16 weights and compute, float32 outputs: near the eager model in bf16, and as near to
    float32 as the eager model in bf16 is."""
    for lengths in ([seq_len], [seq_len, max(1, seq_len // 2), max(1, seq_len - 3)]):
        inputs = _rows(lengths, seq_len, n_global, seed=seq_len)
        (got,) = _run_program(bf16_program, inputs)
        with torch.no_grad():
            assert _max_diff(got, eager_bf16(*inputs).last_hidden_state) <= BF16_TOLERANCE["eager bfloat16"]
            assert _max_diff(got, eager(*inputs).last_hidden_state) <= BF16_TOLERANCE["float32"]


@pytest.mark.slow
def test_head_module_exports_in_bf16_and_is_left_as_it_was(head_models, tmp_path):
    """A float32 module exported in bf16: the head's outputs too, from a copy (a bf16 cast of its
    weights could not be undone), so the module keeps its weights, dtype and mode. A third
    export (about 15 s here), so only with -m slow."""
    model = head_models[LongformerForQuestionAnswering].train()
    before = {name: p.clone() for name, p in model.state_dict().items()}
    export_torch(model, tmp_path, dtype=torch.bfloat16)
    assert model.training and all(torch.equal(before[n], p) for n, p in model.state_dict().items())
    model.eval()
    program = load_exported(tmp_path)
    inputs = _rows([70, 50], 70, 2, seed=5)
    with torch.no_grad():
        expected = model(*inputs)
    got = _run_program(program, inputs)
    assert [array.shape for array in got[1:]] == [
        tuple(expected[name].shape) for name in ("start_logits", "end_logits")
    ]
    for array, name in zip(got[1:], ("start_logits", "end_logits"), strict=True):
        assert _max_diff(array, expected[name]) <= BF16_TOLERANCE["float32"]


def test_torch_export_errors(tiny_checkpoint, tmp_path):
    with pytest.raises(ValueError, match=r"\[LF204\].*torch.float16"):
        export_torch(tiny_checkpoint, tmp_path, dtype=torch.float16)
    with pytest.raises(OSError, match=r"\[LF205\].*--format torch-export"):
        load_exported(tmp_path)


def test_onnxruntime_cpu_has_no_bfloat16_matmul():
    """Why ``export --format onnx --dtype bf16`` is refused up front (LF202): onnxruntime's CPU
    provider has no bfloat16 MatMul (nor Add, Gemm, Softmax's ReduceMax, Erf: onnxruntime 1.32).
    If this fails, it has one now, and a bf16 ONNX export is worth trying again."""
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    helper, bf16 = onnx.helper, onnx.TensorProto.BFLOAT16
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "bf16_matmul",
        [helper.make_tensor_value_info(name, bf16, [2, 2]) for name in ("a", "b")],
        [helper.make_tensor_value_info("c", bf16, [2, 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    with pytest.raises(Exception, match="NOT_IMPLEMENTED.*MatMul"):
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


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
