"""Export: one graph, right at every length, batch size and number of global tokens.

Two formats of the same graph (``TraceableLongformer``), with inputs ``input_ids``,
``attention_mask`` and ``global_attention_mask`` (int64, (batch, seq), both axes dynamic) and
output ``last_hidden_state`` (batch, seq, hidden), plus the head's outputs for a head checkpoint
(``logits``, or ``start_logits`` / ``end_logits``), all float32:

- ``export_onnx`` writes ``OUT/model.onnx`` (float32) for onnxruntime; ``quantize_int8`` makes an
  int8 (dynamic, weights only) copy of it through onnxruntime.
- ``export_torch`` writes ``OUT/model.pt2`` through ``torch.export`` (``torch.export.save``), in
  float32 or bfloat16. It runs with torch alone, without this package's eager model code::

      program = torch.export.load("OUT/model.pt2")  # or: model = load_exported("OUT")
      model = program.module()
      with torch.inference_mode():
          last_hidden_state, *head_outputs = model(input_ids, attention_mask, global_attention_mask)

  Loading parses the graph's symbolic shapes: seconds, more for more layers. The program runs the
  traceable attention, which does more work than the eager fast paths (wider windows, the global
  projections always), so it takes longer than the eager model (about 1.4x on one CPU thread at
  4k tokens): it is for serving without this package, not for speed. A bfloat16 export computes
  in bfloat16 and casts its outputs to float32 at the end, as the spaCy encoder's
  ``dtype = "bfloat16"`` does: numpy and most runtimes have no bfloat16, and the cast costs
  nothing next to the layers. There is no bfloat16 ONNX: onnxruntime's CPU provider has no
  bfloat16 MatMul, Add or Softmax (onnxruntime 1.32).

``config.json`` and the tokenizer files go beside the graph, so ``OUT`` is all a runtime needs.

The graph runs the traceable attention path of ``attention.py``: no host reads, no
data-dependent Python branches, no ``as_strided``. Rows are padded to whole blocks inside the graph,
and the number of global slots is a reduction inside the graph, so there is no upper bound on
global tokens. What the eager model checks at its door (ids inside the vocabulary, at most
``config.max_tokens`` tokens, mask values 0/1/2) the graph does not: the runtime then fails on an
out-of-range gather. Inputs must be validated by the caller, as ``LongformerModel.forward`` does.
``token_type_ids`` and ``position_ids`` are the defaults (zeros; RoBERTa positions from the ids).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import Errors
from .attention import TraceableMask, traceable_self_attention
from .config import LongformerConfig
from .convert_roberta import TOKENIZER_CONFIG_FILE, TOKENIZER_FILES
from .encoder import LongformerModel
from .heads import (
    LongformerForMaskedLM,
    LongformerForQuestionAnswering,
    LongformerForSequenceClassification,
    LongformerForTokenClassification,
)
from .hf_checkpoint import CONFIG_NAME, HFCheckpointMixin
from .layers import LongformerLayer, roberta_position_ids
from .linear import ACTIVATIONS

logger = logging.getLogger(__name__)

ONNX_NAME = "model.onnx"
TORCH_EXPORT_NAME = "model.pt2"
TORCH_EXPORT_DTYPES = (torch.float32, torch.bfloat16)
INPUT_NAMES = ("input_ids", "attention_mask", "global_attention_mask")
DEFAULT_OPSET = 18
# The heads whose outputs the graph carries, and under which names (transformers' field names).
HEAD_OUTPUTS: dict[type[nn.Module], tuple[str, ...]] = {
    LongformerModel: (),
    LongformerForMaskedLM: ("logits",),
    LongformerForSequenceClassification: ("logits",),
    LongformerForTokenClassification: ("logits",),
    LongformerForQuestionAnswering: ("start_logits", "end_logits"),
}
_BY_ARCHITECTURE = {cls.hf_architecture: cls for cls in HEAD_OUTPUTS}


class TraceableLongformer(nn.Module):
    """A ``LongformerModel`` or supported head, as a graph a tracer keeps whatever the input.

    Same weights (shared, not copied) and, in eval mode, the same numbers as the eager model with
    ``token_type_ids`` and ``position_ids`` left to their defaults and no head mask. Returns
    ``last_hidden_state`` (batch, seq, hidden), then the head's outputs (``HEAD_OUTPUTS``), float32
    whatever the weights' dtype.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if type(model) not in HEAD_OUTPUTS:
            supported = ", ".join(cls.__name__ for cls in HEAD_OUTPUTS)
            raise ValueError(Errors.LF190.format(model=type(model).__name__, supported=supported))
        self.model = model
        self.encoder: LongformerModel = model if isinstance(model, LongformerModel) else model.longformer
        self.output_names = ("last_hidden_state", *HEAD_OUTPUTS[type(model)])
        one_sided = [layer.attention.one_sided for layer in self.encoder.layers]
        common = math.lcm(*one_sided)
        # Rows are padded to a multiple of this: a whole number of every layer's query blocks, and
        # at least two of the widest layer's.
        self.row_multiple = common if common >= 2 * max(one_sided) else 2 * common

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, global_attention_mask: Tensor
    ) -> tuple[Tensor, ...]:
        """All inputs (batch, seq) int64; attention_mask 0/1 (2 also means global)."""
        encoder = self.encoder
        seq_len = input_ids.shape[1]
        input_ids, attention_mask, global_attention_mask = self._pad(
            input_ids, attention_mask, global_attention_mask
        )
        hidden = encoder.embeddings(
            input_ids=input_ids,
            inputs_embeds=None,
            position_ids=roberta_position_ids(input_ids, padding_idx=encoder.config.pad_token_id),
            token_type_ids=torch.zeros_like(input_ids),
        )
        mask = TraceableMask.from_masks(attention_mask, global_attention_mask)
        for layer in encoder.layers:
            hidden = _layer(layer, hidden, mask)
        hidden = hidden[:, :seq_len]
        return tuple(out.float() for out in (hidden, *self._head(hidden)))

    def _pad(self, input_ids: Tensor, attention_mask: Tensor, global_attention_mask: Tensor) -> list[Tensor]:
        """The inputs padded (pad id, mask 0) to the next multiple of ``row_multiple`` past seq.

        Padding never changes a real token's output (the eager model pads to the window too), but
        it makes every length look alike to ``torch.export``, which otherwise fixes the sequence
        axis: each layer gets two or more whole blocks (an axis that may be 1 is special-cased), and
        both cuts, to the padded rows here and back to seq at the end, always cut something (a cut
        that may be a no-op becomes a guard on the length, false at every multiple of a block).
        The pad is a constant (twice ``row_multiple``), so no pad amount comes from a shape, which
        TorchScript's tracer would freeze at the example's length.
        """
        multiple = self.row_multiple
        rows = (input_ids.shape[1] // multiple + 1) * multiple
        pad_id = self.encoder.config.pad_token_id
        return [
            nn.functional.pad(t, (0, 2 * multiple), value=value)[:, :rows]
            for t, value in ((input_ids, pad_id), (attention_mask, 0), (global_attention_mask, 0))
        ]

    def _head(self, hidden: Tensor) -> tuple[Tensor, ...]:
        model = self.model
        if isinstance(model, LongformerForQuestionAnswering):
            start, end = model.qa_outputs(hidden).unbind(-1)
            return start, end
        if isinstance(model, LongformerForSequenceClassification):
            return (model.classifier(hidden[:, 0]),)
        if isinstance(model, LongformerForTokenClassification):
            return (model.classifier(hidden),)
        if isinstance(model, LongformerForMaskedLM):
            return (model.lm_head(hidden, self.encoder.embeddings.word.weight),)
        return ()


def _layer(layer: LongformerLayer, hidden: Tensor, mask: TraceableMask) -> Tensor:
    """``LongformerLayer.forward`` in inference, with plain ``nn.Linear`` calls: the eager path's
    fused oneDNN kernel (``linear.dense``) has no ONNX form."""
    context = traceable_self_attention(layer.attention, hidden, mask)
    attended = layer.attention_norm(layer.attention_output(context) + hidden)
    inner = ACTIVATIONS[layer.ffn.activation](layer.ffn.intermediate(attended))
    return layer.ffn_norm(layer.ffn.output(inner) + attended)


def load_for_export(path: str | Path) -> nn.Module:
    """The checkpoint folder's model with the head its config.json names, if we export that head
    (``HEAD_OUTPUTS``); else the bare encoder (the head is left out, and logged)."""
    path = Path(path)
    config_file = path / CONFIG_NAME
    if not config_file.is_file():
        raise OSError(Errors.LF191.format(path=path))
    named = LongformerConfig.from_json_file(config_file).extra.get("architectures") or []
    cls = next((_BY_ARCHITECTURE[name] for name in named if name in _BY_ARCHITECTURE), LongformerModel)
    if named and cls is LongformerModel and "LongformerModel" not in named:
        logger.warning("%s: exporting the encoder alone; the export has no %s head", path, named[0])
    if cls is LongformerModel:  # the graph has no pooler: a pipeline's saved encoder has none to load
        return cls.from_pretrained(path, add_pooling_layer=False)
    return cls.from_pretrained(path)


@contextmanager
def _export_model(
    model_or_checkpoint_dir: nn.Module | str | Path, dtype: torch.dtype
) -> Iterator[tuple[Path | None, nn.Module]]:
    """(the checkpoint folder or None, the model in eval mode and ``dtype``). A model passed in is
    left as it was afterwards: a cast that loses precision (float32 to bfloat16) runs on a copy,
    since it can't be undone in place; any other is undone."""
    if isinstance(model_or_checkpoint_dir, (str, Path)):
        source = Path(model_or_checkpoint_dir)
        yield source, load_for_export(source).eval().to(dtype)
        return
    model = model_or_checkpoint_dir
    was_training, had = model.training, next(model.parameters()).dtype
    if dtype != had and torch.finfo(dtype).bits <= torch.finfo(had).bits:
        yield None, copy.deepcopy(model).eval().to(dtype)
        return
    model.eval().to(dtype)
    try:
        yield None, model
    finally:
        model.to(had).train(was_training)


def export_onnx(
    model_or_checkpoint_dir: nn.Module | str | Path,
    out_dir: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    dynamo: bool = False,
) -> Path:
    """Write ``out_dir/model.onnx`` (+ config.json and tokenizer files) and return its path.

    One export serves every batch size, length and count of global tokens: the example input
    only picks the graph's ops, not its shapes. The model is exported in float32 and eval mode,
    then left as it was. Pass the checkpoint folder (not a loaded model) to get its tokenizer
    files beside the graph. ``dynamo``: export through ``torch.export`` (needs ``onnxscript`` and
    opset >= 18) instead of the TorchScript tracer, which is deprecated but about 15x faster
    here; both give the same graph numbers (tests/model/test_export.py).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / ONNX_NAME
    with _export_model(model_or_checkpoint_dir, torch.float32) as (source, model):
        wrapper = TraceableLongformer(model).eval()
        example = _example_inputs(wrapper.encoder.config, device=next(model.parameters()).device)
        with torch.no_grad(), warnings.catch_warnings():
            # Expected and harmless: the TorchScript exporter's deprecation, its tracer's notes on
            # shapes it follows, and notes on Slice ops it leaves unfolded or axis names it merges.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=".*(Constant folding|The axis name)")
            if dynamo:
                _export_dynamo(wrapper, example, onnx_path, opset=opset)
            else:
                torch.onnx.export(
                    wrapper,
                    example,
                    str(onnx_path),
                    input_names=list(INPUT_NAMES),
                    output_names=list(wrapper.output_names),
                    dynamic_axes={
                        **{name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES},
                        **_output_axes(wrapper.output_names, model),
                    },
                    opset_version=opset,
                    dynamo=False,
                )
        _copy_side_files(source, model, out_dir)
    return onnx_path


def export_torch(
    model_or_checkpoint_dir: nn.Module | str | Path,
    out_dir: str | Path,
    *,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write ``out_dir/model.pt2`` (+ config.json and tokenizer files) and return its path.

    ``torch.export`` of ``TraceableLongformer`` with the batch and sequence axes dynamic: one
    program for every length (1 included), batch and count of global tokens. ``dtype`` (float32 or
    bfloat16) is the weights' and the compute's; outputs are float32 either way. The model is
    left as it was (see ``_export_model``). Run it with ``load_exported`` or
    ``torch.export.load(path).module()``.
    """
    if dtype not in TORCH_EXPORT_DTYPES:
        raise ValueError(Errors.LF204.format(dtype=dtype))
    if not hasattr(torch.export.Dim, "DYNAMIC"):  # torch < 2.5 can't leave an axis's guards to run time
        raise ValueError(Errors.LF208.format(version=torch.__version__))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / TORCH_EXPORT_NAME
    with _export_model(model_or_checkpoint_dir, dtype) as (source, model):
        wrapper = TraceableLongformer(model).eval()
        example = _example_inputs(wrapper.encoder.config, device=next(model.parameters()).device)
        # DYNAMIC, not named Dims: named Dims must be proved to hold every guard, and the solver
        # can't prove some that hold at every length (e.g. 16 * (seq // 16 + 1) != seq); DYNAMIC
        # keeps them as checks at call time instead, and still fails the export if an axis would
        # be fixed. test_export.py runs the program at lengths it never saw.
        dynamic = {name: {0: torch.export.Dim.DYNAMIC, 1: torch.export.Dim.DYNAMIC} for name in INPUT_NAMES}
        with torch.no_grad():
            program = torch.export.export(wrapper, example, dynamic_shapes=dynamic)
        torch.export.save(program, path)
        _copy_side_files(source, model, out_dir)
    return path


def load_exported(path: str | Path) -> nn.Module:
    """The program ``export_torch`` wrote (``path``: the folder or its model.pt2), as a module.

    It takes the three int64 (batch, seq) inputs and returns the tuple of float32 outputs
    (``last_hidden_state``, then the head's); it needs torch only, not this package's model code.
    Its parameters don't require grad: it is for inference, so calls build no autograd graph.
    """
    path = Path(path)
    file = path / TORCH_EXPORT_NAME if path.is_dir() else path
    if not file.is_file():
        raise OSError(Errors.LF205.format(path=path))
    module = torch.export.load(file).module()
    module.requires_grad_(False)
    return module


def _export_dynamo(
    wrapper: TraceableLongformer, example: tuple[Tensor, ...], onnx_path: Path, *, opset: int
) -> None:
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    torch.onnx.export(
        wrapper,
        example,
        str(onnx_path),
        input_names=list(INPUT_NAMES),
        output_names=list(wrapper.output_names),
        dynamic_shapes={name: {0: batch, 1: sequence} for name in INPUT_NAMES},
        opset_version=opset,
        dynamo=True,
        external_data=False,
        verbose=False,
    )


def _example_inputs(config: LongformerConfig, *, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Two rows of a few windows, the second padded, with global tokens in both: every op of the
    graph runs, and no axis is 1 (``torch.export`` would fix an axis of size 0 or 1)."""
    length = max(2, min(config.max_tokens, 2 * max(config.attention_window) + 3))
    generator = torch.Generator().manual_seed(0)
    low = max(config.pad_token_id, config.bos_token_id, config.eos_token_id) + 1
    input_ids = torch.randint(
        min(low, config.vocab_size - 1), config.vocab_size, (2, length), generator=generator
    )
    attention_mask = torch.ones(2, length, dtype=torch.long)
    attention_mask[1, length // 2 + 1 :] = 0
    input_ids[1, length // 2 + 1 :] = config.pad_token_id
    global_attention_mask = torch.zeros(2, length, dtype=torch.long)
    global_attention_mask[:, 0] = 1
    global_attention_mask[0, length // 3] = 1
    return input_ids.to(device), attention_mask.to(device), global_attention_mask.to(device)


def _output_axes(names: tuple[str, ...], model: nn.Module) -> dict[str, dict[int, str]]:
    sequence_classification = isinstance(model, LongformerForSequenceClassification)
    return {
        name: {0: "batch"} if sequence_classification and name == "logits" else {0: "batch", 1: "sequence"}
        for name in names
    }


def _copy_side_files(source: Path | None, model: HFCheckpointMixin, out_dir: Path) -> None:
    """The folder's config.json and tokenizer files; for a model passed as such, its config (with
    ``architectures`` naming the exported head) and no tokenizer: it has none to give."""
    if source is not None:
        shutil.copyfile(source / CONFIG_NAME, out_dir / CONFIG_NAME)
        for name in (*TOKENIZER_FILES, TOKENIZER_CONFIG_FILE):
            if (source / name).is_file():
                shutil.copyfile(source / name, out_dir / name)
        return
    data = model.config.to_dict()
    data["architectures"] = [model.hf_architecture]
    (out_dir / CONFIG_NAME).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf8")


def quantize_int8(onnx_path: str | Path, out_path: str | Path) -> Path:
    """An int8 copy of an exported model, through onnxruntime's dynamic quantization: the MatMul
    weights stored as int8, activations quantized at run time. Smaller and, on CPU, usually faster,
    but not exact: test_export.py measures how far it moves the states."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as error:
        raise ImportError(Errors.LF192.format(error=error)) from error
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(str(onnx_path), str(out_path), weight_type=QuantType.QInt8)
    return out_path
