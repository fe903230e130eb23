"""Turn a RoBERTa checkpoint into a Longformer checkpoint, as the Longformer paper did.

Beltagy et al. (2020), section 5: start from RoBERTa, copy its 512 learned position embeddings over
and over up to the new length, and initialise the global attention projections
(``query_global``/``key_global``/``value_global``) from the local ones (``query``/``key``/
``value``). Everything else is RoBERTa's, unchanged. The result is a folder in the Hugging Face
layout that ``LongformerModel.from_pretrained`` (ours and transformers') loads.

When the converted model equals RoBERTa: RoBERTa lets every real token attend to every real
token. The converted model lets a token attend to the tokens at most ``window / 2`` places away
(``window`` being the layer's ``attention_window``) and to the global tokens, and lets a global
token attend to every token, through projections copied from the local ones. So the last hidden
states of the real (non-padding) tokens are RoBERTa's, up to float rounding, exactly when

* the input fits RoBERTa's own position table (at most 512 tokens for ``roberta-base``), so every
  position reads a row RoBERTa learned, and
* every two real tokens that are both not global lie at most ``min(attention_window) / 2``
  places apart. Without global tokens, for a row of ``n_real`` real tokens followed by padding:
  ``n_real - 1 <= min(attention_window) / 2``. With every token global it always holds.

Padding (``attention_mask`` 0, or the padding the model adds to reach a multiple of the window)
is never attended to, so it does not change the real tokens' states; the padding rows themselves
differ (RoBERTa's pad queries still see the whole row, Longformer's only their window).
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import Errors
from .config import LongformerConfig
from .encoder import LongformerModel
from .heads import (
    LongformerForMaskedLM,
    LongformerForMultipleChoice,
    LongformerForQuestionAnswering,
    LongformerForSequenceClassification,
    LongformerForTokenClassification,
)
from .hf_checkpoint import (
    CONFIG_NAME,
    HF_PREFIX,
    TIED_DECODER,
    and_more,
    read_checkpoint,
    to_hf_state_dict,
    write_checkpoint,
)

# transformers' name for the encoder inside a RoBERTa head model.
ROBERTA_PREFIX = "roberta."
# Each RoBERTa architecture and the Longformer one with the same head (same weight names).
ARCHITECTURES: dict[str, type[torch.nn.Module]] = {
    "RobertaModel": LongformerModel,
    "RobertaForMaskedLM": LongformerForMaskedLM,
    "RobertaForSequenceClassification": LongformerForSequenceClassification,
    "RobertaForTokenClassification": LongformerForTokenClassification,
    "RobertaForQuestionAnswering": LongformerForQuestionAnswering,
    "RobertaForMultipleChoice": LongformerForMultipleChoice,
}
# Tokenizer files copied as they are; tokenizer_config.json gets the new `model_max_length`.
TOKENIZER_FILES = (
    "vocab.json",
    "merges.txt",
    "tokenizer.json",
    "special_tokens_map.json",
    "added_tokens.json",
)
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
# Buffers some transformers versions saved with the weights; recomputed at run time.
BUFFERS = {"embeddings.position_ids", "embeddings.token_type_ids"}
GLOBAL_PROJECTIONS = ("query", "key", "value")


def convert_roberta(
    src: str | Path,
    dst: str | Path,
    *,
    max_length: int = 4096,
    attention_window: int | list[int] = 512,
    force: bool = False,
    allow_pickle: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write the Longformer made from the RoBERTa checkpoint folder ``src`` into ``dst``.

    ``max_length``: the longest input of the new model, in pieces; the position table gets
    ``max_length + pad_token_id + 1`` rows (4,098 for 4,096 with RoBERTa's ``pad_token_id`` 1).
    It need not be a multiple of the window: the model pads each input to one itself.
    ``attention_window``: one even window >= 2 for all layers, or one per layer (the paper: 512).
    ``force``: delete what ``dst`` holds first (it must otherwise be missing or empty).
    ``progress``: called with a line per step (the command line prints them).

    A RoBERTa head (``architectures`` in config.json: ``RobertaForMaskedLM``, ...) becomes the
    Longformer with the same head; without ``architectures`` the weights' names decide between the
    base model and the masked LM. Tokenizer files are copied, with ``model_max_length`` set to
    ``max_length`` in ``tokenizer_config.json``. Returns ``dst``.
    """
    say = progress or (lambda line: None)
    src, dst = Path(src), Path(dst)
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise ValueError(Errors.LF102.format(value=max_length))
    data = _read_roberta_config(src)
    n_layers = data.get("num_hidden_layers", 12)
    _check_windows(attention_window, n_layers)
    clear_dst = _check_destination(src, dst, force=force)

    say(f"Reading the RoBERTa weights in {src}")
    roberta = read_checkpoint(src, allow_pickle=allow_pickle)
    roberta_arch = _roberta_architecture(data, roberta, src)
    model_cls = ARCHITECTURES[roberta_arch]
    config = longformer_config(data, max_length=max_length, attention_window=attention_window)
    architecture = model_cls.hf_architecture

    n_offset = config.pad_token_id + 1
    say(
        f"Converting {roberta_arch} -> {architecture}: {max_length:,} positions, "
        f"attention window {_describe(config.attention_window)}"
    )
    state = longformer_state(roberta, model_cls=model_cls, config=config, path=src)

    say(f"Writing the Longformer checkpoint to {dst}")
    if clear_dst:  # only now that the conversion has succeeded
        for entry in dst.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    dst.mkdir(parents=True, exist_ok=True)
    out = config.to_dict()
    out["architectures"] = [architecture]
    (dst / CONFIG_NAME).write_text(json.dumps(out, indent=2, sort_keys=True) + "\n", encoding="utf8")
    write_checkpoint(dst, state)
    copied = copy_tokenizer_files(src, dst, max_length=max_length)
    say(
        f"Positions: {n_offset} offset rows + {_n_learned(roberta, n_offset):,} learned rows tiled "
        f"to {max_length:,}; tokenizer files: {', '.join(copied) if copied else 'none found in ' + str(src)}"
    )
    return dst


def longformer_config(
    data: dict[str, Any], *, max_length: int, attention_window: int | list[int]
) -> LongformerConfig:
    """The RoBERTa config's keys, with the Longformer's window and position table (validated)."""
    data = {key: value for key, value in data.items() if key not in ("architectures", "model_type")}
    data["attention_window"] = attention_window
    data["max_position_embeddings"] = max_length + data.get("pad_token_id", 1) + 1
    return LongformerConfig.from_dict(data)


def longformer_state(
    roberta: dict[str, Tensor], *, model_cls: type[torch.nn.Module], config: LongformerConfig, path: Path
) -> dict[str, Tensor]:
    """``roberta``'s tensors under the Longformer's names (transformers' layout): encoder under
    ``longformer.`` for a head, global projections copied from the local ones, positions tiled.

    The names and shapes expected are those of ``model_cls`` built on the meta device (no memory),
    so a missing weight, a weight too many or a shape that disagrees with the config is an error.
    """
    architecture = model_cls.hf_architecture
    with torch.device("meta"):
        expected = to_hf_state_dict(model_cls(config), architecture)
    head = architecture != "LongformerModel"
    prefix = HF_PREFIX if head else ""
    # RoBERTa's tensors under the Longformer's names: the encoder moves from `roberta.` to
    # `longformer.`; head weights have the same names in both.
    source: dict[str, Tensor] = {}
    for key, tensor in roberta.items():
        body = key[len(ROBERTA_PREFIX) :] if key.startswith(ROBERTA_PREFIX) else key
        if body in BUFFERS:
            continue
        source[prefix + body if key.startswith(ROBERTA_PREFIX) or not head else body] = tensor
    if "lm_head.bias" not in source and "lm_head.decoder.bias" in source:
        source["lm_head.bias"] = source["lm_head.decoder.bias"]
    source.pop("lm_head.decoder.bias", None)  # transformers ties it to lm_head.bias
    if TIED_DECODER not in expected:
        source.pop(TIED_DECODER, None)  # tied: the word embeddings again

    state: dict[str, Tensor] = {}
    missing = []
    for key in expected:
        body = key[len(prefix) :] if key.startswith(prefix) else key
        name = body.split(".")[-2] if "." in body else ""
        if name.endswith("_global") and name[: -len("_global")] in GLOBAL_PROJECTIONS:
            # initialised from the local projection; a missing one is reported under its own name
            local = key.replace(f"{name}.", f"{name[: -len('_global')]}.")
            if local in source:
                state[key] = source[local].clone()
        elif key in source:
            state[key] = source[key]
        elif not body.startswith("pooler."):  # both loaders start a missing pooler fresh, and say so
            missing.append(key)
    if missing:
        raise ValueError(
            Errors.LF106.format(
                path=path, architecture=architecture, keys=", ".join(missing[:8]), more=and_more(missing, 8)
            )
        )
    problems = [f"{key} (not a weight of {architecture})" for key in source if key not in expected]
    positions = prefix + "embeddings.position_embeddings.weight"
    n_offset = config.pad_token_id + 1
    if state[positions].shape[0] <= n_offset:
        problems.append(
            f"{positions}: {state[positions].shape[0]} rows, no learned position after {n_offset}"
        )
    else:
        state[positions] = tile_positions(state[positions], n_offset=n_offset, max_length=config.max_tokens)
    problems += [
        f"{key}: {tuple(tensor.shape)}, expected {tuple(expected[key].shape)}"
        for key, tensor in state.items()
        if tensor.shape != expected[key].shape
    ]
    if problems:
        raise ValueError(
            Errors.LF107.format(
                path=path, architecture=architecture, details="; ".join(problems[:6]) + and_more(problems, 6)
            )
        )
    return {key: tensor.contiguous() for key, tensor in state.items()}


def tile_positions(table: Tensor, *, n_offset: int, max_length: int) -> Tensor:
    """A position table of ``n_offset + max_length`` rows: the first ``n_offset`` rows (padding and
    the row below it, never a real position) as they are, then the learned rows
    ``table[n_offset:]`` repeated until ``max_length`` rows are filled (the last copy cut short).

    *Shape:* ``table`` (n_offset + n_learned, hidden) -> (n_offset + max_length, hidden).
    """
    learned = table[n_offset:]
    copies = math.ceil(max_length / learned.shape[0])
    tiled = learned.repeat(copies, 1)[:max_length]
    return torch.cat([table[:n_offset], tiled], dim=0)


def copy_tokenizer_files(src: Path, dst: Path, *, max_length: int) -> list[str]:
    """Copy the tokenizer files ``src`` has; ``tokenizer_config.json`` (written when missing but
    other tokenizer files exist) gets ``model_max_length = max_length``. Returns the names written."""
    copied = []
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)
            copied.append(name)
    if not copied and not (src / TOKENIZER_CONFIG_FILE).is_file():
        return copied
    settings: dict[str, Any] = {}
    if (src / TOKENIZER_CONFIG_FILE).is_file():
        try:
            settings = json.loads((src / TOKENIZER_CONFIG_FILE).read_text(encoding="utf8"))
        except ValueError as err:
            raise ValueError(Errors.LF109.format(path=src / TOKENIZER_CONFIG_FILE, error=err)) from err
        if not isinstance(settings, dict):
            raise ValueError(Errors.LF109.format(path=src / TOKENIZER_CONFIG_FILE, error="not a JSON object"))
    settings["model_max_length"] = max_length
    (dst / TOKENIZER_CONFIG_FILE).write_text(
        json.dumps(settings, indent=2, ensure_ascii=False) + "\n", encoding="utf8"
    )
    return copied + [TOKENIZER_CONFIG_FILE]


def _read_roberta_config(src: Path) -> dict[str, Any]:
    if not src.exists():
        raise OSError(Errors.LF100.format(path=src, problem="the folder does not exist"))
    if not src.is_dir():
        raise OSError(Errors.LF100.format(path=src, problem="it is a file, not a folder"))
    if not (src / CONFIG_NAME).is_file():
        raise OSError(Errors.LF100.format(path=src, problem=f"it has no {CONFIG_NAME}"))
    try:
        data = json.loads((src / CONFIG_NAME).read_text(encoding="utf8"))
    except (OSError, ValueError) as err:
        raise OSError(
            Errors.LF100.format(path=src, problem=f"its {CONFIG_NAME} is not valid JSON ({err})")
        ) from err
    if not isinstance(data, dict):
        raise OSError(Errors.LF100.format(path=src, problem=f"its {CONFIG_NAME} is not a JSON object"))
    model_type = data.get("model_type")
    if model_type != "roberta":
        hint = (
            "it is a Longformer already: load it with `LongformerModel.from_pretrained`"
            if model_type == "longformer"
            else 'give a RoBERTa checkpoint (`"model_type": "roberta"`)'
        )
        raise ValueError(Errors.LF101.format(path=src, model_type=model_type, hint=hint))
    position_type = data.get("position_embedding_type", "absolute")
    if position_type != "absolute":
        raise ValueError(
            Errors.LF108.format(
                path=src,
                what=f'`position_embedding_type` {position_type!r} (Longformer has only "absolute")',
                options="RoBERTa checkpoints with absolute position embeddings",
            )
        )
    return data


def _check_windows(value: Any, n_layers: int) -> None:
    windows = value if isinstance(value, (list, tuple)) else [value]
    ok = all(isinstance(w, int) and not isinstance(w, bool) and w >= 2 and w % 2 == 0 for w in windows)
    if not ok or (isinstance(value, (list, tuple)) and len(windows) != n_layers):
        raise ValueError(Errors.LF103.format(value=value, n_layers=n_layers))


def _check_destination(src: Path, dst: Path, *, force: bool) -> bool:
    """Whether ``dst`` holds files to delete before writing (only with ``force``)."""
    resolved_src, resolved_dst = src.resolve(), dst.resolve()
    if resolved_dst == resolved_src or resolved_dst in resolved_src.parents:
        raise ValueError(Errors.LF105.format(dst=dst, src=src))
    if not dst.exists():
        return False
    if not dst.is_dir():
        raise OSError(Errors.LF104.format(path=dst, found="it is a file"))
    found = sorted(p.name for p in dst.iterdir())
    if found and not force:
        shown = ", ".join(found[:5]) + and_more(found, 5)
        raise OSError(Errors.LF104.format(path=dst, found=f"it holds {shown}"))
    return bool(found)


def _roberta_architecture(data: dict[str, Any], weights: dict[str, Tensor], src: Path) -> str:
    named = data.get("architectures") or []
    if named:
        if len(named) != 1 or named[0] not in ARCHITECTURES:
            raise ValueError(
                Errors.LF108.format(
                    path=src, what=f"`architectures` {named!r}", options=", ".join(ARCHITECTURES)
                )
            )
        return named[0]
    if not any(key.startswith(ROBERTA_PREFIX) for key in weights):
        return "RobertaModel"
    if any(key.startswith("lm_head.") for key in weights):
        return "RobertaForMaskedLM"
    raise ValueError(
        Errors.LF108.format(
            path=src,
            what="a RoBERTa head that config.json doesn't name (no `architectures`)",
            options=", ".join(ARCHITECTURES)
            + ' (set e.g. `"architectures": ["RobertaForSequenceClassification"]`)',
        )
    )


def _n_learned(weights: dict[str, Tensor], n_offset: int) -> int:
    for key, tensor in weights.items():
        if key.endswith("embeddings.position_embeddings.weight"):
            return tensor.shape[0] - n_offset
    return 0


def _describe(windows: list[int]) -> str:
    return str(windows[0]) if len(set(windows)) == 1 else ", ".join(map(str, windows))
