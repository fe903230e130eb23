"""The encoder's ``backend = "onnxruntime"``: an exported graph (``model/export.py``) run by an
onnxruntime session, numpy in and numpy out.

Torch-free on purpose: ``encoder_model.OnnxEncoder`` wraps this runner as the module the shim
holds, so planning, batching and merging (``running.py``) stay the same for both backends.
onnxruntime is imported only when a runner is built: the base install has none.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..errors import Errors

INPUT_NAMES = ("input_ids", "attention_mask", "global_attention_mask")
OUTPUT_NAME = "last_hidden_state"


def import_onnxruntime() -> Any:
    """The ``onnxruntime`` module, or an error that says how to install it."""
    try:
        import onnxruntime
    except ImportError as error:
        raise ImportError(Errors.LF194.format(error=error)) from error
    return onnxruntime


class OnnxRunner:
    """One onnxruntime session over the graph ``graph`` (the bytes of a ``model.onnx``).

    ``threads``: onnxruntime's intra-op threads (None: its default, one per physical core).
    ``cuda``: run on onnxruntime's CUDA provider when it has one (``onnxruntime-gpu``), else the
    CPU. With ``OMP_WAIT_POLICY=PASSIVE`` its threads don't spin while waiting, as torch's don't.
    Pickles as its graph and settings (``nlp.pipe(n_process=N)`` under spawn), and keeps the
    graph's bytes: they are what the pipeline saves.
    """

    def __init__(
        self, graph: bytes, *, threads: int | None = None, cuda: bool = False, source: str = ""
    ) -> None:
        ort = import_onnxruntime()
        self.graph = graph
        self.threads = threads
        self.cuda = cuda
        self.source = source
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        if cuda and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(graph, sess_options=options, providers=providers)
        except Exception as error:  # onnxruntime raises its own exception types, not ValueError
            raise ValueError(Errors.LF195.format(path=source or "<bytes>", error=error)) from error
        self._check_signature()

    def _check_signature(self) -> None:
        inputs = {i.name: i.type for i in self.session.get_inputs()}
        outputs = {o.name: o.shape for o in self.session.get_outputs()}
        problems = [f"no input `{name}`" for name in INPUT_NAMES if name not in inputs]
        problems += [
            f"input `{name}` is {inputs[name]}, not tensor(int64)"
            for name in INPUT_NAMES
            if inputs.get(name, "tensor(int64)") != "tensor(int64)"
        ]
        problems += [f"no output `{OUTPUT_NAME}`"] if OUTPUT_NAME not in outputs else []
        problems += (
            [f"extra inputs {sorted(set(inputs) - set(INPUT_NAMES))}"]
            if set(inputs) - set(INPUT_NAMES)
            else []
        )
        if problems:
            found = f"inputs {sorted(inputs)}, outputs {sorted(outputs)}"
            raise ValueError(
                Errors.LF196.format(path=self.source or "<bytes>", problem="; ".join(problems), found=found)
            )

    def hidden_size(self) -> int | None:
        """The graph's width, when its output shape fixes it."""
        shape = next(o.shape for o in self.session.get_outputs() if o.name == OUTPUT_NAME)
        return shape[-1] if shape and isinstance(shape[-1], int) else None

    def initializers(self, suffix: str) -> dict[str, np.ndarray]:
        """The graph's stored tensors whose names end with ``suffix`` (none without the ``onnx``
        package, which reads them; onnxruntime alone can't)."""
        try:
            import onnx
            from onnx import numpy_helper
        except ImportError:
            return {}
        graph = onnx.load_model_from_string(self.graph).graph
        return {i.name: numpy_helper.to_array(i) for i in graph.initializer if i.name.endswith(suffix)}

    def run(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, global_attention_mask: np.ndarray
    ) -> np.ndarray:
        """Piece states (batch, seq, hidden) float32 of int64 (batch, seq) inputs."""
        feed = {
            "input_ids": np.ascontiguousarray(input_ids, dtype=np.int64),
            "attention_mask": np.ascontiguousarray(attention_mask, dtype=np.int64),
            "global_attention_mask": np.ascontiguousarray(global_attention_mask, dtype=np.int64),
        }
        (hidden,) = self.session.run([OUTPUT_NAME], feed)
        return hidden if hidden.dtype == np.float32 else hidden.astype(np.float32)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.graph, self.threads, self.cuda, self.source))


def _rebuild(graph: bytes, threads: int | None, cuda: bool, source: str) -> OnnxRunner:
    return OnnxRunner(graph, threads=threads, cuda=cuda, source=source)
