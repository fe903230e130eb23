"""``python -m spacy_longformer init-config TASK OUTPUT``: a complete ``spacy train`` config.

Our equivalent of ``spacy init config``, which knows only spaCy's own components. The templates ship
inside the package (``spacy_longformer/configs/*.cfg``); the repository's ``configs/*.cfg`` are what
this writes with no options, kept identical by a test. Options edit the template's values in place,
so its comments stay with the settings they explain.
"""

import re
from importlib import resources

from thinc.api import Config

from .errors import Errors

TASKS = ("textcat", "textcat_multilabel", "ner", "ner_transition", "qa")

# What --gpu changes: mixed precision (CUDA autocast, with the gradient scaler) on every encoder,
# float32 matmuls in TF32, and batches that fill a large card. A starting point for one 80 GB GPU
# with documents of up to 4,096 pieces; lower the sizes if memory runs out, and set the encoders'
# gradient_checkpointing = true for documents of 16,384 pieces. (Mixed precision is float16:
# thinc's autocast knows no bfloat16, and CuPy, which spaCy's GPU arrays use, has no bfloat16.)
GPU_BATCH_PIECES = 32768
GPU_ENCODER = {"mixed_precision": "true", "max_batch_pieces": str(GPU_BATCH_PIECES)}
GPU_BATCHER = {"size": str(GPU_BATCH_PIECES)}
GPU_INITIALIZE = {"before_init": '{"@callbacks":"spacy-longformer.allow_tf32.v1"}'}


def template(task: str) -> str:
    """The shipped config of ``task``, as text."""
    if task not in TASKS:
        raise ValueError(Errors.LF144.format(task=task, options=", ".join(TASKS)))
    return resources.files(__package__).joinpath("configs", f"{task}.cfg").read_text(encoding="utf8")


def init_config(task: str, *, checkpoint: str | None = None, gpu: bool = False) -> str:
    """The config of ``task``: ``checkpoint`` becomes ``[paths] longformer`` (else it is given at
    ``spacy train`` time with ``--paths.longformer``); ``gpu`` sets mixed precision and GPU-sized
    batches."""
    text = template(task)
    if checkpoint is not None:
        text = _set(text, "paths", "longformer", _quote(checkpoint))
    if gpu:
        config = Config().from_str(text, interpolate=False)
        for section in _encoder_sections(config):
            for key, value in GPU_ENCODER.items():
                text = _set(text, section, key, value)
        for key, value in GPU_BATCHER.items():
            text = _set(text, "training.batcher", key, value)
        for key, value in GPU_INITIALIZE.items():
            text = _set(text, "initialize", key, value)
    Config().from_str(text, interpolate=False)  # still a config spaCy reads
    return text


def _encoder_sections(config: Config) -> list[str]:
    """Dotted names of every ``LongformerEncoder.v1`` block in ``[components]``."""
    found = []

    def walk(block: dict, path: str) -> None:
        if block.get("@architectures") == "spacy-longformer.LongformerEncoder.v1":
            found.append(path)
        for key, value in block.items():
            if isinstance(value, dict):
                walk(value, f"{path}.{key}")

    walk(config["components"], "components")
    return found


def _set(text: str, section: str, key: str, value: str) -> str:
    """``text`` with ``key = value`` in ``[section]`` (the key must be there already)."""
    header = re.search(rf"^\[{re.escape(section)}\]\s*$", text, flags=re.M)
    if header is None:
        raise ValueError(f"no [{section}] in the template")
    end = re.search(r"^\[", text[header.end() :], flags=re.M)
    body_end = header.end() + (end.start() if end else len(text) - header.end())
    body = text[header.end() : body_end]
    line = re.compile(rf"^{re.escape(key)} = .*$", flags=re.M)
    if not line.search(body):
        raise ValueError(f"no {key} in [{section}] of the template")
    return text[: header.end()] + line.sub(lambda _: f"{key} = {value}", body, count=1) + text[body_end:]


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
