"""The encoder as a thinc Model, ``spacy-longformer.LongformerEncoder.v1``: List[Doc] ->
List[LongformerData]; here it is built, given its checkpoint, and serialized.

Weights arrive at ``initialize`` from the checkpoint folder ``name``, or from a saved pipeline;
construction reads nothing from disk. ``planning`` plans each doc and ``running`` runs them.

``backend = "onnxruntime"`` runs an exported graph (``model/export.py``) instead of the torch
forward, for inference only: the shim then holds an ``OnnxEncoder``, a module without parameters
whose forward is an onnxruntime session (``onnx_backend``), so planning, batching and merging are
the same code for both backends. Such an encoder saves its graph (``model.onnx``), config and
tokenizer, no torch weights.

``dtype = "bfloat16"`` or ``"float16"`` runs the torch weights in that dtype, for inference only:
they are cast once when they arrive (``LongformerShim.set_model``: initialize, ``from_disk``,
``from_bytes``), states leave the encoder as float32 (``running``), and saving writes float32
weights, so the dtype stays a runtime setting of the config. Training wants float32 weights
(``mixed_precision`` is CUDA autocast over them).
"""

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import srsly
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from spacy.util import registry
from thinc.api import ArgsKwargs, Model, PyTorchGradScaler, PyTorchShim, get_torch_default_device
from torch import nn

from ..errors import Errors, Warnings
from ..model import LongformerConfig, LongformerModel
from ..model.attention import ATTN_IMPLEMENTATIONS
from ..model.hf_checkpoint import CONFIG_NAME
from ..model.output import LongformerOutput
from ..tokenization import LongformerTokenizer
from .global_attention import GlobalAttentionGetter, configure_global_attention
from .onnx_backend import OnnxRunner
from .running import EncoderModel, encoder_forward, section_of

logger = logging.getLogger(__name__)

BACKENDS = ("torch", "onnxruntime")
# `dtype` settings -> the dtype the torch weights run in (inference only unless float32).
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
ONNX_NAME = "model.onnx"  # the graph's file in a saved encoder folder (as `export` names it)


@registry.architectures("spacy-longformer.LongformerEncoder.v1")
def build_longformer_encoder_v1(
    name: str | None,
    global_attention: GlobalAttentionGetter | None = None,
    max_window_pieces: int | None = None,
    window_overlap: int = 256,
    max_batch_pieces: int = 16384,
    mixed_precision: bool = False,
    grad_scaler_config: dict | None = None,
    attn_implementation: str = "auto",
    gradient_checkpointing: bool = False,
    question_key: str | None = None,
    backend: str = "torch",
    onnx_path: str | None = None,
    dtype: str = "float32",
) -> EncoderModel:
    """A Longformer checkpoint folder as a thinc Model.

    name: the checkpoint folder (config.json, model.safetensors, tokenizer files), read at
        ``initialize``. global_attention: a getter (default: ``<s>`` of every window).
    max_window_pieces: pieces per window, ``<s>``/``</s>`` excluded (default: what the position
        table holds); longer docs run as overlapping windows, ``window_overlap`` pieces apart.
    max_batch_pieces: padded pieces per forward pass, which bounds memory whatever the mix of
        lengths. mixed_precision / grad_scaler_config: as thinc's PyTorch wrappers (CUDA autocast).
    question_key: read docs as QA docs, ``<s> question </s></s> context </s>`` with the question
        taken from ``doc.spans[question_key]`` and repeated in every window.
    backend: ``"torch"``, or ``"onnxruntime"`` to run an exported graph (inference only; needs
        ``pip install onnxruntime``). onnx_path: that graph, e.g. ``OUT/model.onnx`` of ``python -m
        spacy_longformer export`` (or its ``model.int8.onnx``); null: ``model.onnx`` in the folder
        ``name``, else ``name`` exported at ``initialize``. Config and tokenizer come from ``name``
        (or, with ``name`` empty, the graph's folder). Unused with ``backend = "torch"``. A
        pipeline saved with ``backend = "onnxruntime"`` keeps its graph and reads neither; one saved
        with torch weights and loaded with ``backend = "onnxruntime"`` runs the graph at
        ``onnx_path`` (an int8 export of that pipeline, say), else its weights exported at load.
    dtype: ``"float32"``, or ``"bfloat16"`` / ``"float16"`` to run the weights in that dtype for
        inference (predict, ``nlp.pipe``; bfloat16 on the CPU, either on CUDA); states still come
        out float32 and the weights are saved float32. Training needs ``"float32"``. Only for
        ``backend = "torch"``: an ONNX graph runs in the precision it was exported in.
    """
    for key, value, minimum in (
        ("window_overlap", window_overlap, 0),
        ("max_batch_pieces", max_batch_pieces, 1),
        ("max_window_pieces", max_window_pieces or 2, 2),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(Errors.LF123.format(name=key, expected=f"an int >= {minimum}", value=value))
    if attn_implementation not in ATTN_IMPLEMENTATIONS:
        expected = "one of " + ", ".join(map(repr, ATTN_IMPLEMENTATIONS))
        raise ValueError(
            Errors.LF123.format(name="attn_implementation", expected=expected, value=attn_implementation)
        )
    if backend not in BACKENDS:
        expected = "one of " + ", ".join(map(repr, BACKENDS))
        raise ValueError(Errors.LF123.format(name="backend", expected=expected, value=backend))
    if not isinstance(dtype, str) or dtype not in DTYPES:
        expected = "one of " + ", ".join(map(repr, DTYPES))
        raise ValueError(Errors.LF123.format(name="dtype", expected=expected, value=dtype))
    if backend == "onnxruntime" and dtype != "float32":
        expected = (
            "'float32' with backend = 'onnxruntime' (the graph runs in the precision it was exported "
            "in; 'bfloat16' and 'float16' need backend = 'torch')"
        )
        raise ValueError(Errors.LF123.format(name="dtype", expected=expected, value=dtype))
    shim = LongformerShim(
        None,
        tokenizer=None,
        mixed_precision=mixed_precision,
        grad_scaler_config=grad_scaler_config or {},
        dtype=dtype,
    )
    forward = encoder_forward if dtype == "float32" else _low_precision_forward
    return Model(
        "longformer_encoder",
        forward if backend == "torch" else _inference_forward,
        init=_init,
        dims={"nO": None},
        shims=[shim],
        attrs={
            "name": name,
            "global_attention": global_attention or configure_global_attention(),
            "max_window_pieces": max_window_pieces,
            "window_overlap": window_overlap,
            "max_batch_pieces": max_batch_pieces,
            "attn_implementation": attn_implementation,
            "gradient_checkpointing": gradient_checkpointing,
            "question_key": question_key,
            "backend": backend,
            "onnx_path": onnx_path,
            "dtype": dtype,
            # Where this block sits in the pipeline's config (set by its component), for messages.
            "config_section": None,
            # spaCy's replace_listeners: what takes the place of a listener's config block.
            "replace_listener_cfg": replace_listener_cfg,
        },
    )


class LongformerShim(PyTorchShim):
    """The encoder's torch model and its tokenizer, saved together, and its backward pass.

    Built empty with the Model (``None`` until ``initialize`` or deserialization), so thinc's own
    ``Model.from_bytes`` finds it: that is how spaCy's components save an encoder embedded in them
    (after ``replace_listeners``). Our pipes save the same state as an HF checkpoint folder.

    With ``mixed_precision`` (CUDA autocast) the gradient scaler is on unless
    ``grad_scaler_config`` says ``enabled = false``; it works on CUDA only, so on the CPU it stays
    off. Each backward pass unscales only the gradients it adds: thinc's shim unscales every
    gradient the parameters hold, which divides what earlier passes of the same update (another
    batch group, ``accumulate_gradient``) left there by the scale once more.

    ``dtype`` (a key of ``DTYPES``) is what the torch weights run in: ``set_model`` casts them
    once; ``to_bytes`` saves them as float32.
    """

    def __init__(
        self,
        model: LongformerModel | None,
        *,
        tokenizer: LongformerTokenizer | None,
        mixed_precision: bool,
        grad_scaler_config: dict[str, Any],
        dtype: str = "float32",
    ) -> None:
        super().__init__(
            model,
            mixed_precision=mixed_precision,
            serialize_model=_torch_to_bytes,
            deserialize_model=_torch_from_bytes,
        )
        self.tokenizer = tokenizer
        self.grad_scaler_config = dict(grad_scaler_config)
        self.dtype = dtype

    def set_model(self, model: LongformerModel, tokenizer: LongformerTokenizer) -> None:
        """Take the torch model (moved to the default device, and cast to ``dtype``) and tokenizer;
        the scaler follows."""
        device = get_torch_default_device()
        self._model = model.to(device)
        if not isinstance(model, OnnxEncoder) and self.dtype != "float32":
            self._model.to(DTYPES[self.dtype])
        self.tokenizer = tokenizer
        settings = {"enabled": self._mixed_precision, **self.grad_scaler_config}
        settings["enabled"] = bool(settings["enabled"]) and device.type == "cuda"
        self._grad_scaler = PyTorchGradScaler(**settings)
        self._grad_scaler.to_(device)

    def begin_update(self, inputs: ArgsKwargs) -> tuple[Any, Callable[[ArgsKwargs], ArgsKwargs]]:
        if isinstance(self._model, OnnxEncoder):  # the encoder's forward says so first, with its block
            raise ValueError(Errors.LF193.format(setting="[<the encoder block>]"))
        self._model.train()
        with torch.autocast("cuda", enabled=self._mixed_precision):
            output = self._model(*inputs.args, **inputs.kwargs)

        def backprop(grads: ArgsKwargs) -> ArgsKwargs:
            parameters = [p for p in self._model.parameters() if p.requires_grad]
            earlier = [p.grad for p in parameters]
            for parameter in parameters:
                parameter.grad = None
            grads.kwargs["grad_tensors"] = self._grad_scaler.scale(grads.kwargs["grad_tensors"], inplace=True)
            torch.autograd.backward(*grads.args, **grads.kwargs)
            added = [p.grad for p in parameters if p.grad is not None]
            if self._grad_scaler.unscale(added):
                for grad in added:
                    grad.zero_()
            for parameter, grad in zip(parameters, earlier, strict=True):
                if grad is not None:
                    parameter.grad = grad if parameter.grad is None else parameter.grad.add_(grad)
            return ArgsKwargs(args=(), kwargs={})

        return output, backprop

    def predict(self, inputs: ArgsKwargs) -> Any:
        """thinc's predict; autocast (``mixed_precision``) only over float32 weights, and a CPU
        that can't run float16 says to use bfloat16."""
        if self.dtype == "float32" or isinstance(self._model, OnnxEncoder):
            return super().predict(inputs)
        self._model.eval()
        try:
            with torch.no_grad():
                return self._model(*inputs.args, **inputs.kwargs)
        except RuntimeError as error:
            if self.dtype == "float16" and self.device.type == "cpu" and "Half" in str(error):
                raise ValueError(Errors.LF201.format(version=torch.__version__, error=error)) from error
            raise
        finally:
            self._model.train()

    def to_bytes(self) -> bytes:
        if self._model is None:
            raise ValueError(Errors.LF120.format(setting="[<the encoder block>] name"))
        if isinstance(self._model, OnnxEncoder):
            weights = {"onnx": self._model.runner.graph, "model_config": self._model.config.to_dict()}
        else:
            weights = {"state": _torch_to_bytes(self._model)}
        return srsly.msgpack_dumps({"config": self.cfg, **weights, "tokenizer": self.tokenizer.to_bytes()})

    def from_bytes(self, bytes_data: bytes) -> "LongformerShim":
        msg = srsly.msgpack_loads(bytes_data)
        self.cfg = msg["config"]
        if "onnx" in msg:
            config = LongformerConfig.from_dict(msg["model_config"])
            model = onnx_encoder(config, msg["onnx"], source="the saved encoder's graph")
        else:
            model = _torch_from_bytes(None, msg["state"], get_torch_default_device())
        self.set_model(model, LongformerTokenizer.from_bytes(msg["tokenizer"]))
        return self


class OnnxEncoder(nn.Module):
    """An exported graph in the torch encoder's place (``backend = "onnxruntime"``).

    No parameters: the weights live in the graph, which ``runner`` (``onnx_backend.OnnxRunner``)
    runs. ``forward`` takes what ``running.encoder_forward`` gives ``LongformerModel`` (int64
    (batch, seq) ``input_ids``, ``attention_mask``, ``global_attention_mask``) and returns its
    ``last_hidden_state`` (batch, seq, hidden) float32 on the inputs' device. ``config`` is the
    checkpoint's, for the planning (window, padding id, width).
    """

    def __init__(self, config: LongformerConfig, runner: OnnxRunner) -> None:
        super().__init__()
        self.config = config
        self.runner = runner

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, global_attention_mask: torch.Tensor
    ) -> LongformerOutput:
        hidden = self.runner.run(
            input_ids.cpu().numpy(), attention_mask.cpu().numpy(), global_attention_mask.cpu().numpy()
        )
        return LongformerOutput(last_hidden_state=torch.from_numpy(hidden).to(input_ids.device))


def onnx_encoder(config: LongformerConfig, graph: bytes, *, source: str) -> OnnxEncoder:
    """An ``OnnxEncoder`` of the graph's bytes, checked against the checkpoint's ``config``. Its
    session takes torch's thread count (one per forked worker, see ``ml/__init__.py``), and
    onnxruntime's CUDA provider when thinc runs on a GPU and onnxruntime has one."""
    runner = OnnxRunner(
        graph,
        threads=torch.get_num_threads(),
        cuda=get_torch_default_device().type == "cuda",
        source=source,
    )
    width = runner.hidden_size()
    if width is not None and width != config.hidden_size:
        problem = f"its states are {width} wide, the checkpoint's `hidden_size` is {config.hidden_size}"
        raise ValueError(Errors.LF196.format(path=source, problem=problem, found=f"width {width}"))
    return OnnxEncoder(config, runner)


def export_for_onnxruntime(torch_model: LongformerModel) -> OnnxEncoder:
    """The torch encoder exported (``model/export.py``) and loaded into onnxruntime."""
    from ..model.export import export_onnx

    with tempfile.TemporaryDirectory() as folder:
        graph = export_onnx(torch_model, folder).read_bytes()
    return onnx_encoder(torch_model.config, graph, source="the encoder, exported at load")


def _low_precision_forward(
    model: EncoderModel, docs: list, is_train: bool
) -> tuple[list, Callable[[list], list]]:
    """The forward of ``dtype`` bfloat16 / float16: ``running.encoder_forward``, for inference only."""
    dtype = model.attrs["dtype"]
    if is_train:
        raise ValueError(Errors.LF200.format(dtype=dtype, setting=section_of(model)))
    if dtype not in _warned_slow and get_torch_default_device().type == "cpu" and not _native_on_cpu(dtype):
        _warned_slow.add(dtype)
        logger.warning(Warnings.LFW012.format(dtype=dtype, setting=section_of(model)))
    return encoder_forward(model, docs, is_train)


# Half-precision dtypes already warned about in this process (LFW012: once is enough).
_warned_slow: set[str] = set()


def _native_on_cpu(dtype: str) -> bool:
    """Whether oneDNN has this CPU's native matmul instructions for ``dtype`` (without them torch
    runs half-precision matmuls through fallbacks far slower than float32)."""
    mkldnn = torch.ops.mkldnn
    check = mkldnn._is_mkldnn_bf16_supported if dtype == "bfloat16" else mkldnn._is_mkldnn_fp16_supported
    return bool(check())


def _inference_forward(
    model: EncoderModel, docs: list, is_train: bool
) -> tuple[list, Callable[[list], list]]:
    """The forward of ``backend = "onnxruntime"``: ``running.encoder_forward``, for inference only."""
    if is_train:
        raise ValueError(Errors.LF193.format(setting=section_of(model)))
    return encoder_forward(model, docs, is_train)


@registry.callbacks("spacy-longformer.allow_tf32.v1")
def configure_allow_tf32() -> Callable[[Any], Any]:
    """An ``[initialize] before_init`` callback: CUDA matmuls and convolutions in TF32 (float32
    storage, 10-bit mantissa products), about 2-3x faster than full float32 on Ampere and newer
    GPUs at no measurable cost to fine-tuning. A process-wide torch setting; a no-op on the CPU."""
    return _allow_tf32


def _allow_tf32(nlp: Any) -> Any:
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    return nlp


def replace_listener_cfg(encoder_cfg: dict[str, Any], listener_cfg: dict[str, Any]) -> dict[str, Any]:
    """The config of a spaCy component's own copy of the encoder, in place of its listener: the
    encoder's block, with the listener's pooling (``LongformerTok2Vec.v1``)."""
    if listener_cfg.get("@architectures") != "spacy-longformer.LongformerListener.v1":
        return encoder_cfg
    tok2vec: dict[str, Any] = {
        "@architectures": "spacy-longformer.LongformerTok2Vec.v1",
        "encoder": encoder_cfg,
    }
    if "pooling" in listener_cfg:
        tok2vec["pooling"] = listener_cfg["pooling"]
    return tok2vec


def _init(model: EncoderModel, X: Any = None, Y: Any = None) -> None:
    """Load the checkpoint named by ``name`` (weights, config and tokenizer), afresh each time."""
    if model.attrs.get("backend") == "onnxruntime":
        _init_onnx(model)
        return
    path = model.attrs["name"]
    if not path:
        raise ValueError(Errors.LF141.format(setting=name_setting(model)))
    try:
        torch_model = LongformerModel.from_pretrained(path, add_pooling_layer=False)
        tokenizer = LongformerTokenizer.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise ValueError(Errors.LF121.format(path=str(path), setting=name_setting(model), error=err)) from err
    attach(model, torch_model, tokenizer)


def _init_onnx(model: EncoderModel) -> None:
    """Config and tokenizer from ``name`` (or the graph's folder), the graph from ``onnx_path`` (or
    ``name/model.onnx``, else ``name`` exported now)."""
    name, onnx_path = model.attrs["name"], model.attrs["onnx_path"]
    folder = Path(name) if name else Path(onnx_path).parent if onnx_path else None
    if folder is None:
        raise ValueError(Errors.LF141.format(setting=name_setting(model)))
    try:
        config = LongformerConfig.from_json_file(folder / CONFIG_NAME)
        tokenizer = LongformerTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as err:
        raise ValueError(
            Errors.LF121.format(path=str(folder), setting=name_setting(model), error=err)
        ) from err
    graph_file = Path(onnx_path) if onnx_path else folder / ONNX_NAME
    if onnx_path is None and not graph_file.is_file():
        logger.info("%s has no %s: exporting it for onnxruntime (set `onnx_path` to skip)", folder, ONNX_NAME)
        try:
            torch_model = LongformerModel.from_pretrained(folder, add_pooling_layer=False)
        except (OSError, ValueError) as err:
            raise ValueError(
                Errors.LF121.format(path=str(folder), setting=name_setting(model), error=err)
            ) from err
        attach(model, export_for_onnxruntime(torch_model), tokenizer)
        return
    attach(model, _graph_file_encoder(graph_file, config, f"the checkpoint {folder}"), tokenizer)


def _read_graph(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ValueError(Errors.LF195.format(path=path, error=error)) from error


def _graph_file_encoder(graph_file: Path, config: LongformerConfig, owner: str) -> OnnxEncoder:
    """The graph file ``onnx_path`` names, checked against ``owner``'s config, in onnxruntime."""
    _check_graph_config(graph_file, config, owner)
    return onnx_encoder(config, _read_graph(graph_file), source=str(graph_file))


def _check_graph_config(graph_file: Path, config: LongformerConfig, owner: str) -> None:
    """The config.json that ``export`` writes beside a graph must be ``owner``'s (the checkpoint
    ``name``, or the saved encoder): another model's graph would run, and give wrong states."""
    beside = graph_file.parent / CONFIG_NAME
    if not beside.is_file():
        return
    theirs = LongformerConfig.from_json_file(beside)
    keys = ("vocab_size", "hidden_size", "num_hidden_layers", "attention_window", "max_position_embeddings")
    differ = [key for key in keys if getattr(theirs, key) != getattr(config, key)]
    if differ:
        problem = f"its {beside} differs from {owner}'s in " + ", ".join(differ)
        raise ValueError(Errors.LF196.format(path=graph_file, problem=problem, found="another model's graph"))


def name_setting(model: EncoderModel) -> str:
    """Where the encoder's ``name`` is set, for messages."""
    return f"{section_of(model)} name"


def attach(
    model: EncoderModel,
    torch_model: LongformerModel | OnnxEncoder,
    tokenizer: LongformerTokenizer,
    *,
    source: str = "The saved encoder",
) -> None:
    """Give the thinc Model its PyTorch encoder and tokenizer (at initialize or deserialization).

    With ``backend = "onnxruntime"`` a torch encoder is exported first; an ``OnnxEncoder`` (from
    ``source``) can't serve ``backend = "torch"``: it has no weights to train or read.
    """
    onnx = model.attrs.get("backend") == "onnxruntime"
    if isinstance(torch_model, OnnxEncoder) and not onnx:
        raise ValueError(Errors.LF198.format(path=source))
    if onnx and not isinstance(torch_model, OnnxEncoder):
        torch_model = _graph_for_weights(model, torch_model)
    if not onnx:
        torch_model.set_attn_implementation(model.attrs["attn_implementation"])
        torch_model.gradient_checkpointing = model.attrs["gradient_checkpointing"]
    _check_window_settings(model, torch_model.config.max_tokens - 2)
    model.shims[0].set_model(torch_model, tokenizer)
    model.set_dim("nO", torch_model.config.hidden_size, force=True)


def _graph_for_weights(model: EncoderModel, torch_model: LongformerModel) -> OnnxEncoder:
    """Torch weights (a pipeline saved with ``backend = "torch"``) loaded with ``backend =
    "onnxruntime"``: the graph at ``onnx_path`` when set (an int8 export of this very pipeline,
    say), checked to hold these weights; else these weights exported now."""
    onnx_path = model.attrs["onnx_path"]
    if not onnx_path:
        return export_for_onnxruntime(torch_model)
    graph_file = Path(onnx_path)
    encoder = _graph_file_encoder(graph_file, torch_model.config, "the saved encoder")
    # Fine-tuning moves every weight, and quantization leaves the embeddings' LayerNorm as it is:
    # a graph of the checkpoint the pipeline started from would run, with the wrong numbers.
    ours = torch_model.embeddings.norm.weight.detach().float().cpu().numpy()
    for name, theirs in encoder.runner.initializers(".embeddings.norm.weight").items():
        if theirs.shape != ours.shape or float(abs(theirs - ours).max()) > 1e-6:
            raise ValueError(Errors.LF207.format(path=graph_file, name=name, setting=section_of(model)))
    return encoder


def _check_window_settings(model: EncoderModel, fits: int) -> None:
    """Say so when the checkpoint's positions cut a window setting down (the encoder runs with the
    cut values: a long document is still read whole)."""
    asked = model.attrs["max_window_pieces"]
    if asked is not None and asked > fits:
        logger.warning(Warnings.LFW010.format(asked=asked, fits=fits, setting=section_of(model)))
    window = min(asked or fits, fits)
    # Overlaps past half a window run as half (each window still moves forward); one of a whole
    # window or more can only be a mistake.
    if model.attrs["window_overlap"] >= window:
        logger.warning(
            Warnings.LFW011.format(overlap=model.attrs["window_overlap"], window=window, used=window // 2)
        )


def is_loaded(model: EncoderModel) -> bool:
    """Whether the encoder has its weights (from ``initialize`` or a saved pipeline)."""
    return model.shims[0]._model is not None


def torch_model_of(model: EncoderModel) -> LongformerModel:
    if not is_loaded(model):
        raise ValueError(Errors.LF120.format(setting=name_setting(model)))
    if isinstance(model.shims[0]._model, OnnxEncoder):
        raise ValueError(
            Errors.LF197.format(setting=section_of(model), what="this (attention maps, the weights)")
        )
    return model.shims[0]._model


def tokenizer_of(model: EncoderModel) -> LongformerTokenizer:
    if not is_loaded(model):
        raise ValueError(Errors.LF120.format(setting=name_setting(model)))
    return model.shims[0].tokenizer


def to_bytes(model: EncoderModel) -> bytes:
    """Config, weights (safetensors, or the ONNX graph) and tokenizer of an initialized encoder."""
    tokenizer_of(model)
    return model.shims[0].to_bytes()


def from_bytes(model: EncoderModel, data: bytes) -> None:
    shim = model.shims[0].from_bytes(data)
    attach(model, shim._model, shim.tokenizer)


def to_disk(model: EncoderModel, path: Path) -> None:
    """An HF checkpoint folder: config.json, model.safetensors and the tokenizer files; with
    ``backend = "onnxruntime"``, model.onnx in place of model.safetensors (what ``export`` writes)."""
    tokenizer = tokenizer_of(model)
    encoder = model.shims[0]._model
    if isinstance(encoder, OnnxEncoder):
        path.mkdir(parents=True, exist_ok=True)
        encoder.config.to_json_file(path / CONFIG_NAME)
        (path / ONNX_NAME).write_bytes(encoder.runner.graph)
    else:
        dtype = next(encoder.parameters()).dtype
        if dtype == torch.float32:
            encoder.save_pretrained(path)
        else:  # float32 on disk whatever `dtype` runs; bf16/fp16 -> fp32 -> back is exact
            try:
                encoder.float().save_pretrained(path)
            finally:
                encoder.to(dtype)
    tokenizer.save_pretrained(path)


def from_disk(model: EncoderModel, path: Path) -> None:
    """What ``to_disk`` wrote: a folder with model.onnx is an onnxruntime encoder's."""
    graph_file = path / ONNX_NAME
    if graph_file.is_file():
        if model.attrs.get("backend") != "onnxruntime":
            raise ValueError(Errors.LF198.format(path=path))
        config = LongformerConfig.from_json_file(path / CONFIG_NAME)
        encoder = onnx_encoder(config, _read_graph(graph_file), source=str(graph_file))
    else:
        encoder = LongformerModel.from_pretrained(path, add_pooling_layer=False)
    attach(model, encoder, LongformerTokenizer.from_pretrained(path))


def _torch_to_bytes(torch_model: LongformerModel) -> bytes:
    state = {k: _float32(v.detach().cpu()).contiguous() for k, v in torch_model.state_dict().items()}
    return srsly.msgpack_dumps({"config": torch_model.config.to_dict(), "weights": save_safetensors(state)})


def _torch_from_bytes(_: Any, data: bytes, device: torch.device) -> LongformerModel:
    msg = srsly.msgpack_loads(data)
    torch_model = LongformerModel(LongformerConfig.from_dict(msg["config"]), add_pooling_layer=False)
    torch_model.load_state_dict(load_safetensors(msg["weights"]), strict=True)
    return torch_model.to(device)


def _float32(tensor: torch.Tensor) -> torch.Tensor:
    """Half-precision weights (``dtype``) as float32, for saving; others as they are."""
    return tensor.float() if tensor.dtype in (torch.bfloat16, torch.float16) else tensor
