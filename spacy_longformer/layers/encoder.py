"""The encoder as a thinc Model: List[Doc] -> List[LongformerData].

Per batch: tokenize each doc's text, align pieces to tokens, pick global tokens with the getter,
cut docs longer than one window into overlapping windows on token edges, sort all windows by
length and run them in groups of at most ``max_batch_pieces`` padded pieces, then merge each doc's
windows back (best context). Weights arrive at ``initialize`` from the checkpoint folder ``name``,
or from a saved pipeline; construction reads nothing from disk.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import srsly
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model, PyTorchGradScaler, PyTorchShim, get_torch_default_device, torch2xp, xp2torch
from thinc.types import ArgsKwargs, Floats2d, Ragged

from ..errors import Errors
from ..model import LongformerConfig, LongformerModel
from ..tokenization import LongformerTokenizer
from .alignment import align_tokens, cut_points, piece_bounds, plan_windows, window_owners
from .global_attention import GlobalAttentionGetter, configure_global_attention
from .qa_spans import question_span
from .types import LongformerData

EncoderModel = Model[list[Doc], list[LongformerData]]


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
    """
    if not name:
        raise ValueError(Errors.LF141)
    for key, value, minimum in (
        ("window_overlap", window_overlap, 0),
        ("max_batch_pieces", max_batch_pieces, 1),
        ("max_window_pieces", max_window_pieces or 2, 2),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(Errors.LF123.format(name=key, expected=f"an int >= {minimum}", value=value))
    return Model(
        "longformer_encoder",
        _forward,
        init=_init,
        dims={"nO": None},
        attrs={
            "name": name,
            "global_attention": global_attention or configure_global_attention(),
            "max_window_pieces": max_window_pieces,
            "window_overlap": window_overlap,
            "max_batch_pieces": max_batch_pieces,
            "mixed_precision": mixed_precision,
            "grad_scaler_config": dict(grad_scaler_config or {}),
            "attn_implementation": attn_implementation,
            "gradient_checkpointing": gradient_checkpointing,
            "question_key": question_key,
        },
    )


def _init(model: EncoderModel, X: Any = None, Y: Any = None) -> None:
    """Load the checkpoint named by ``name`` (weights, config and tokenizer)."""
    path = model.attrs["name"]
    try:
        torch_model = LongformerModel.from_pretrained(
            path,
            add_pooling_layer=False,
            attn_implementation=model.attrs["attn_implementation"],
            gradient_checkpointing=model.attrs["gradient_checkpointing"],
        )
        tokenizer = LongformerTokenizer.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise ValueError(Errors.LF121.format(path=str(path), error=err)) from err
    attach(model, torch_model, tokenizer)


def attach(model: EncoderModel, torch_model: LongformerModel, tokenizer: LongformerTokenizer) -> None:
    """Give the thinc Model its PyTorch encoder and tokenizer (at initialize or deserialization)."""
    torch_model.set_attn_implementation(model.attrs["attn_implementation"])
    torch_model.gradient_checkpointing = model.attrs["gradient_checkpointing"]
    shim = PyTorchShim(
        torch_model,
        mixed_precision=model.attrs["mixed_precision"],
        grad_scaler=PyTorchGradScaler(**model.attrs["grad_scaler_config"]),
        serialize_model=_torch_to_bytes,
        deserialize_model=_torch_from_bytes,
    )
    model.shims[:] = [shim]
    model.attrs["tokenizer"] = tokenizer
    model.set_dim("nO", torch_model.config.hidden_size, force=True)


def torch_model_of(model: EncoderModel) -> LongformerModel:
    if not model.shims:
        raise ValueError(Errors.LF120.format(name="<encoder>"))
    return model.shims[0]._model


def to_bytes(model: EncoderModel) -> bytes:
    """Config, weights (safetensors) and tokenizer of an initialized encoder."""
    return srsly.msgpack_dumps(
        {"torch": _torch_to_bytes(torch_model_of(model)), "tokenizer": model.attrs["tokenizer"].to_bytes()}
    )


def from_bytes(model: EncoderModel, data: bytes) -> None:
    msg = srsly.msgpack_loads(data)
    torch_model = _torch_from_bytes(None, msg["torch"], get_torch_default_device())
    attach(model, torch_model, LongformerTokenizer.from_bytes(msg["tokenizer"]))


def to_disk(model: EncoderModel, path: Path) -> None:
    """An HF checkpoint folder: config.json, model.safetensors and the tokenizer files."""
    torch_model_of(model).save_pretrained(path)
    model.attrs["tokenizer"].save_pretrained(path)


def from_disk(model: EncoderModel, path: Path) -> None:
    torch_model = LongformerModel.from_pretrained(path, add_pooling_layer=False)
    attach(model, torch_model.to(get_torch_default_device()), LongformerTokenizer.from_pretrained(path))


def _torch_to_bytes(torch_model: LongformerModel) -> bytes:
    state = {k: v.detach().cpu().contiguous() for k, v in torch_model.state_dict().items()}
    return srsly.msgpack_dumps({"config": torch_model.config.to_dict(), "weights": save_safetensors(state)})


def _torch_from_bytes(_: Any, data: bytes, device: torch.device) -> LongformerModel:
    msg = srsly.msgpack_loads(data)
    torch_model = LongformerModel(LongformerConfig.from_dict(msg["config"]), add_pooling_layer=False)
    torch_model.load_state_dict(load_safetensors(msg["weights"]), strict=True)
    return torch_model.to(device)


@dataclass
class _DocPlan:
    ids: np.ndarray  # (n_pieces,) <s> pieces </s>, or <s> question </s></s> context </s>
    global_mask: np.ndarray  # (n_pieces,) bool
    alignment: Ragged
    prefix: int  # leading pieces every window repeats: <s>, or <s> question </s></s>
    windows: list[tuple[int, int]]  # ranges of the pieces after the prefix, indices into ids
    # per window: the doc pieces it owns and their rows in the window's output (<s> at row 0)
    owned: list[tuple[np.ndarray, np.ndarray]]


def plan_doc(
    doc: Doc,
    tokenizer: LongformerTokenizer,
    *,
    getter: GlobalAttentionGetter,
    window: int,
    overlap: int,
    question_key: str | None = None,
) -> _DocPlan:
    """Pieces, alignment, global pieces and windows for one doc.

    With ``question_key`` the doc is a QA doc: its question and context are tokenized apart as
    ``<s> question </s></s> context </s>`` and every window repeats the question.
    """
    if question_key is None:
        encoded = tokenizer.encode(doc.text)
        prefix = 1
        alignment = rest = _align(encoded.offsets[1:-1], doc, 0, len(doc), char_shift=0, piece_shift=1)
    else:
        question = question_span(doc, question_key)
        # The context follows the separator after the question (make_qa_doc's newline).
        context_char = min(question.end_char + 1, len(doc.text))
        encoded = tokenizer.encode_pair(doc.text[: question.end_char], doc.text[context_char:])
        n_question = sum(1 for s in encoded.sequence_ids if s == 0)
        prefix = n_question + 3
        if window + 1 - prefix < 2:
            raise ValueError(Errors.LF130.format(n_pieces=n_question, window=window))
        asked = _align(encoded.offsets[1 : 1 + n_question], doc, 0, question.end, char_shift=0, piece_shift=1)
        rest = _align(
            encoded.offsets[prefix:-1],
            doc,
            question.end,
            len(doc),
            char_shift=context_char,
            piece_shift=prefix,
        )
        alignment = Ragged(
            np.concatenate([np.asarray(asked.dataXd), np.asarray(rest.dataXd)]).astype("i"),
            np.concatenate([np.asarray(asked.lengths), np.asarray(rest.lengths)]).astype("i"),
        )
    ids = np.asarray(encoded.ids, dtype="int64")
    choice = getter(doc)
    global_mask = np.zeros(len(ids), dtype=bool)
    global_mask[0] = choice.cls
    if len(choice.tokens):
        if choice.tokens.min() < 0 or choice.tokens.max() >= len(doc):
            bad = int(choice.tokens.max() if choice.tokens.max() >= len(doc) else choice.tokens.min())
            raise ValueError(Errors.LF124.format(index=bad, n_tokens=len(doc)))
        # Each run of consecutive tokens covers all pieces from its first to its last, so a
        # whitespace piece inside a span (one no token claims) is global too, as in transformers'
        # "every piece before the first </s>" for a question.
        first_piece, last_piece = piece_bounds(alignment)
        tokens = np.unique(choice.tokens)
        run_starts = tokens[np.r_[True, np.diff(tokens) > 1]]
        run_ends = tokens[np.r_[np.diff(tokens) > 1, True]]
        for first, last in zip(run_starts, run_ends, strict=True):
            global_mask[first_piece[first] : last_piece[last] + 1] = True
    # Windows cut the pieces after the prefix (the whole text, or the context), on token edges.
    n_rest = len(ids) - prefix - 1
    windows = [
        (a + prefix, b + prefix)
        for a, b in plan_windows(
            cut_points(Ragged(np.asarray(rest.dataXd) - prefix, rest.lengths), n_rest),
            size=window + 1 - prefix,
            overlap=min(overlap, (window + 1 - prefix) // 2),
        )
    ]
    owners = np.zeros(len(ids), dtype="i")
    owners[prefix:-1] = window_owners([(a - prefix, b - prefix) for a, b in windows], n_rest)
    owners[-1] = len(windows) - 1
    owned = []
    for w, (start, _) in enumerate(windows):
        # The prefix lands on the first rows of the first window, </s> on the last row of the last.
        pieces = np.flatnonzero(owners == w)
        owned.append((pieces, pieces - start + prefix))
    return _DocPlan(ids, global_mask, alignment, prefix, windows, owned)


def _align(
    offsets: list[tuple[int, int]], doc: Doc, start: int, end: int, *, char_shift: int, piece_shift: int
) -> Ragged:
    """Pieces of tokens ``doc[start:end]``, from piece offsets into a text starting at ``char_shift``."""
    piece_offsets = np.asarray(offsets, dtype="int64").reshape(-1, 2)
    spans = np.asarray(
        [(t.idx - char_shift, t.idx - char_shift + len(t.text)) for t in doc[start:end]], dtype="int64"
    ).reshape(-1, 2)
    if len(piece_offsets) == 0 and len(spans):
        # Whitespace-only text the tokenizer gives no pieces: its tokens take the next piece.
        return Ragged(np.full(len(spans), piece_shift, dtype="i"), np.ones(len(spans), dtype="i"))
    aligned = align_tokens(piece_offsets, spans)
    return Ragged(np.asarray(aligned.dataXd) + piece_shift, aligned.lengths)


def _window_inputs(plan: _DocPlan, index: int) -> tuple[np.ndarray, np.ndarray]:
    start, end = plan.windows[index]
    prefix = slice(0, plan.prefix)
    ids = np.concatenate([plan.ids[prefix], plan.ids[start:end], plan.ids[-1:]])
    glob = np.concatenate([plan.global_mask[prefix], plan.global_mask[start:end], [False]])
    return ids, glob


def _forward(model: EncoderModel, docs: list[Doc], is_train: bool) -> tuple[list[LongformerData], Callable]:
    if not model.shims:
        raise ValueError(Errors.LF120.format(name="<encoder>"))
    shim = model.shims[0]
    torch_model: LongformerModel = shim._model
    config = torch_model.config
    tokenizer: LongformerTokenizer = model.attrs["tokenizer"]
    window = model.attrs["max_window_pieces"] or config.max_tokens - 2
    window = min(window, config.max_tokens - 2)
    plans = [
        plan_doc(
            doc,
            tokenizer,
            getter=model.attrs["global_attention"],
            window=window,
            overlap=model.attrs["window_overlap"],
            question_key=model.attrs["question_key"],
        )
        for doc in docs
    ]
    items = [(d, w) for d, plan in enumerate(plans) for w in range(len(plan.windows))]
    lengths = {
        (d, w): plans[d].windows[w][1] - plans[d].windows[w][0] + plans[d].prefix + 1 for d, w in items
    }
    items.sort(key=lambda item: -lengths[item])
    groups = _group(items, lengths, model.attrs["max_batch_pieces"])
    ops = model.ops
    outputs: dict[tuple[int, int], Floats2d] = {}
    backprops = []
    for group in groups:
        width = max(lengths[item] for item in group)
        ids = np.full((len(group), width), config.pad_token_id, dtype="int64")
        attention = np.zeros((len(group), width), dtype="int64")
        glob = np.zeros((len(group), width), dtype="int64")
        for row, (d, w) in enumerate(group):
            window_ids, window_glob = _window_inputs(plans[d], w)
            ids[row, : len(window_ids)] = window_ids
            attention[row, : len(window_ids)] = 1
            glob[row, : len(window_ids)] = window_glob
        device = shim.device
        inputs = ArgsKwargs(
            args=(),
            kwargs={
                "input_ids": torch.from_numpy(ids).to(device),
                "attention_mask": torch.from_numpy(attention).to(device),
                "global_attention_mask": torch.from_numpy(glob).to(device),
            },
        )
        torch_output, torch_backprop = shim(inputs, is_train)
        hidden = torch_output.last_hidden_state
        states = torch2xp(hidden.float() if hidden.dtype != torch.float32 else hidden)
        for row, item in enumerate(group):
            outputs[item] = states[row, : lengths[item]]
        backprops.append((group, hidden, torch_backprop, width))

    datas = []
    for d, plan in enumerate(plans):
        state = ops.alloc2f(len(plan.ids), torch_model.config.hidden_size)
        for w, (pieces, rows) in enumerate(plan.owned):
            state[ops.asarray1i(pieces)] = outputs[(d, w)][ops.asarray1i(rows)]
        datas.append(
            LongformerData(
                input_ids=plan.ids,
                last_hidden_state=state,
                global_attention_mask=plan.global_mask.astype("int8"),
                alignment=plan.alignment,
                windows=list(plan.windows),
                window_states=ops.xp.stack([outputs[(d, w)][0] for w in range(len(plan.windows))]),
            )
        )

    def backprop(d_outputs: list) -> list[Doc]:
        d_states = [d[0] if isinstance(d, tuple) else d for d in d_outputs]
        d_windows = [d[1] if isinstance(d, tuple) else None for d in d_outputs]
        for group, hidden, torch_backprop, width in backprops:
            d_hidden = ops.alloc3f(len(group), width, hidden.shape[-1])
            for row, (d, w) in enumerate(group):
                pieces, rows = plans[d].owned[w]
                d_hidden[row, ops.asarray1i(rows)] = d_states[d][ops.asarray1i(pieces)]
                if d_windows[d] is not None:
                    d_hidden[row, 0] += d_windows[d][w]
            grad = xp2torch(d_hidden, device=hidden.device).to(hidden.dtype)
            torch_backprop(ArgsKwargs(args=(hidden,), kwargs={"grad_tensors": (grad,)}))
        return []

    return datas, backprop


def _group(items: list, lengths: dict, budget: int) -> list[list]:
    """Consecutive items (sorted longest first) while rows x longest stays within the budget."""
    groups: list[list] = []
    for item in items:
        if groups and (len(groups[-1]) + 1) * lengths[groups[-1][0]] <= budget:
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups
