"""Running the encoder over a batch of Docs: plan each doc, run all windows in padded groups, merge
each doc's windows back, and send gradients back the same way.

All windows of a batch are sorted by length and run in groups of at most ``max_batch_pieces``
padded pieces, so memory stays bounded whatever the mix of lengths; padding never changes a
document's output. Merging is best context: each piece takes its state from the window that owns it
(see ``alignment.window_owners``).
"""

from collections.abc import Callable

import numpy as np
import torch
from spacy.tokens import Doc
from thinc.api import Model, torch2xp, xp2torch
from thinc.types import ArgsKwargs, Floats2d

from ..errors import Errors
from ..model import LongformerModel
from ..tokenization import LongformerTokenizer
from .planning import DocPlan, plan_doc
from .types import LongformerData

EncoderModel = Model[list[Doc], list[LongformerData]]
WindowKey = tuple[int, int]  # (doc, window)


def encoder_forward(
    model: EncoderModel, docs: list[Doc], is_train: bool
) -> tuple[list[LongformerData], Callable]:
    shim = model.shims[0]
    if shim._model is None:
        raise ValueError(Errors.LF120.format(setting=f"{section_of(model)} name"))
    torch_model: LongformerModel = shim._model
    config = torch_model.config
    tokenizer: LongformerTokenizer = shim.tokenizer
    window = min(model.attrs["max_window_pieces"] or config.max_tokens - 2, config.max_tokens - 2)
    plans = [
        plan_doc(
            doc,
            tokenizer,
            getter=model.attrs["global_attention"],
            window=window,
            overlap=model.attrs["window_overlap"],
            pair_key=model.attrs["question_key"],
        )
        for doc in docs
    ]
    lengths = {
        (d, w): plan.window_length(w) for d, plan in enumerate(plans) for w in range(len(plan.windows))
    }
    items = sorted(lengths, key=lambda item: -lengths[item])
    ops = model.ops
    outputs: dict[WindowKey, Floats2d] = {}
    backprops = []
    for group in _group(items, lengths, model.attrs["max_batch_pieces"]):
        width = max(lengths[item] for item in group)
        ids = np.full((len(group), width), config.pad_token_id, dtype="int64")
        attention = np.zeros((len(group), width), dtype="int64")
        glob = np.zeros((len(group), width), dtype="int64")
        for row, (d, w) in enumerate(group):
            window_ids, window_glob = plans[d].window_inputs(w)
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
    datas = [_merge(ops, plan, d, outputs, config.hidden_size) for d, plan in enumerate(plans)]

    def backprop(d_outputs: list) -> list[Doc]:
        """One backward pass over every group's output, so the gradient scaler scales once."""
        d_states = [d[0] if isinstance(d, tuple) else d for d in d_outputs]
        d_windows = [d[1] if isinstance(d, tuple) else None for d in d_outputs]
        hiddens, grads = [], []
        for group, hidden, _, width in backprops:
            d_hidden = ops.alloc3f(len(group), width, hidden.shape[-1])
            for row, (d, w) in enumerate(group):
                pieces, rows = plans[d].owned[w]
                d_hidden[row, ops.asarray1i(rows)] = d_states[d][ops.asarray1i(pieces)]
                if d_windows[d] is not None:
                    d_hidden[row, 0] += d_windows[d][w]
            hiddens.append(hidden)
            grads.append(xp2torch(d_hidden, device=hidden.device).to(hidden.dtype))
        if backprops:
            torch_backprop = backprops[-1][2]
            torch_backprop(ArgsKwargs(args=(tuple(hiddens),), kwargs={"grad_tensors": tuple(grads)}))
        return []

    return datas, backprop


def section_of(model: EncoderModel) -> str:
    """The encoder's block in the pipeline's config, for messages: what its component said
    (``config_section``), else the architecture's name."""
    return f"[{model.attrs.get('config_section') or '<the spacy-longformer.LongformerEncoder.v1 block>'}]"


def _merge(ops, plan: DocPlan, d: int, outputs: dict[WindowKey, Floats2d], width: int) -> LongformerData:
    """One doc's piece states, each piece from the window that owns it."""
    state = ops.alloc2f(len(plan.ids), width)
    for w, (pieces, rows) in enumerate(plan.owned):
        state[ops.asarray1i(pieces)] = outputs[(d, w)][ops.asarray1i(rows)]
    return LongformerData(
        input_ids=plan.ids,
        last_hidden_state=state,
        global_attention_mask=plan.global_mask.astype("int8"),
        alignment=plan.alignment,
        windows=list(plan.windows),
        window_states=ops.xp.stack([outputs[(d, w)][0] for w in range(len(plan.windows))]),
        context_start=plan.prefix,
    )


def _group(items: list[WindowKey], lengths: dict[WindowKey, int], budget: int) -> list[list[WindowKey]]:
    """Consecutive items (sorted longest first) while rows x longest stays within the budget."""
    groups: list[list[WindowKey]] = []
    for item in items:
        if groups and (len(groups[-1]) + 1) * lengths[groups[-1][0]] <= budget:
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups
