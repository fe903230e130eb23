"""Fill-mask: what transformers' ``pipeline("fill-mask")`` returns, for a text of any length.

Per ``<mask>`` of the text, the ``top_k`` most probable pieces, each as the pipeline's dict:
``score`` (softmax probability), ``token`` (id), ``token_str`` (the piece decoded) and
``sequence`` (the text decoded with the piece in the mask's place; special tokens are dropped
when the text has one mask, kept when it has several, as the pipeline does). One mask gives a
list of dicts, several a list of such lists, in text order.

A text longer than one window (more pieces than the position table holds) is read as the
encoder reads a long Doc: overlapping windows of pieces cut on token edges
(``ml.planning.plan_doc``), each mask read in the window where it has the most context
(``ml.alignment.window_owners``). Only the windows that own a mask run. A text that fits is one
window, the very input transformers' pipeline builds, so the numbers are the same.

The package exports ``fill_mask`` under this module's own name, so ``import spacy_longformer``
imports this module: torch, the model and spaCy's floor are imported inside the functions, to keep
that import light.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from .errors import Errors

if TYPE_CHECKING:
    from spacy.language import Language

    from .model import LongformerForMaskedLM
    from .tokenization import LongformerTokenizer

MASKED_LM = "LongformerForMaskedLM"


class FillMaskPrediction(TypedDict):
    """One candidate for one mask, with transformers' keys (a dict, so JSON and code written for the
    pipeline read it unchanged)."""

    score: float
    token: int
    token_str: str
    sequence: str


def fill_mask(
    model: str | Path | LongformerForMaskedLM,
    text: str,
    *,
    tokenizer: LongformerTokenizer | None = None,
    top_k: int = 5,
    window_overlap: int = 256,
) -> list[FillMaskPrediction] | list[list[FillMaskPrediction]]:
    """The ``top_k`` fillers of each ``<mask>`` in ``text``, as ``pipeline("fill-mask")`` gives them.

    ``model``: a checkpoint folder with a masked-LM head (its tokenizer is read from the same
    folder), or a loaded ``LongformerForMaskedLM``, then with its ``tokenizer``.
    ``window_overlap``: pieces shared by neighbouring windows of a text longer than one window
    (at most half a window; as the encoder's setting of the same name).
    """
    import torch

    from .model import LongformerForMaskedLM

    if isinstance(model, (str, Path)):
        if tokenizer is not None:
            raise ValueError(Errors.LF160.format(problem="a checkpoint folder and a `tokenizer`"))
        model, tokenizer = load_masked_lm(model)
    elif not isinstance(model, LongformerForMaskedLM):
        raise TypeError(Errors.LF161.format(type_name=type(model).__name__))
    elif tokenizer is None:
        raise ValueError(Errors.LF160.format(problem="a loaded model without its `tokenizer`"))
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(Errors.LF118.format(name="top_k", value=top_k, minimum=1))
    if isinstance(window_overlap, bool) or not isinstance(window_overlap, int) or window_overlap < 0:
        raise ValueError(Errors.LF118.format(name="window_overlap", value=window_overlap, minimum=0))

    plan = plan_text(text, tokenizer, max_pieces=model.config.max_tokens, overlap=window_overlap)
    mask_id = tokenizer.mask_token_id
    masks = [int(i) for i in (plan.ids == mask_id).nonzero()[0]]
    if not masks:
        raise ValueError(Errors.LF162.format(mask=tokenizer.special_tokens["mask_token"], text=text))
    k = min(top_k, model.config.vocab_size)
    device = next(model.parameters()).device
    probs: dict[int, torch.Tensor] = {}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for window, (pieces, rows) in enumerate(plan.owned):
                wanted = [(piece, row) for piece, row in zip(pieces, rows, strict=True) if piece in masks]
                if not wanted:
                    continue
                ids, glob = plan.window_inputs(window)
                logits = model(
                    input_ids=torch.from_numpy(ids)[None].to(device),
                    global_attention_mask=torch.from_numpy(glob).long()[None].to(device),
                ).logits[0]
                for piece, row in wanted:
                    probs[int(piece)] = logits[int(row)].float().softmax(dim=-1).cpu()
    finally:
        model.train(was_training)

    single = len(masks) == 1
    results: list[list[FillMaskPrediction]] = []
    for position in masks:
        values, predictions = probs[position].topk(k)
        row: list[FillMaskPrediction] = []
        for score, token in zip(values.tolist(), predictions.tolist(), strict=True):
            filled = plan.ids.copy()
            filled[position] = token
            filled = filled[filled != tokenizer.pad_token_id]
            row.append(
                FillMaskPrediction(
                    score=score,
                    token=token,
                    token_str=tokenizer.decode([token]),
                    sequence=tokenizer.decode(filled, skip_special_tokens=single),
                )
            )
        results.append(row)
    return results[0] if single else results


def load_masked_lm(
    path: str | Path, *, allow_fresh_head: bool = False
) -> tuple[LongformerForMaskedLM, LongformerTokenizer]:
    """A checkpoint folder's ``LongformerForMaskedLM`` and tokenizer.

    A checkpoint without masked-LM weights is an error (its head would be random), unless
    ``allow_fresh_head`` (continued pretraining, which trains the head).
    """
    from .model import LongformerForMaskedLM
    from .model.hf_checkpoint import read_head
    from .tokenization import LongformerTokenizer

    config, head = read_head(path, MASKED_LM)
    if not head and not allow_fresh_head:
        named = config.extra.get("architectures") or ["none"]
        raise ValueError(Errors.LF163.format(path=path, architectures=", ".join(named)))
    model = LongformerForMaskedLM.from_pretrained(path, config=config)
    return model.eval(), LongformerTokenizer.from_pretrained(path)


def plan_text(text: str, tokenizer: LongformerTokenizer, *, max_pieces: int, overlap: int):
    """The ``DocPlan`` of a plain text, with no global attention (a masked LM's default): windows of
    at most ``max_pieces`` pieces, ``<s>``/``</s>`` included, cut on the edges of the words of
    spaCy's language-neutral tokenizer."""
    from .ml.global_attention import configure_global_attention
    from .ml.planning import plan_doc

    if not isinstance(text, str):
        raise TypeError(Errors.LF088.format(type_name=type(text).__name__, value=text))
    return plan_doc(
        _blank().make_doc(text),
        tokenizer,
        getter=configure_global_attention(cls=False),
        window=max_pieces - 2,
        overlap=overlap,
    )


@lru_cache(maxsize=1)
def _blank() -> Language:
    import spacy

    return spacy.blank("xx")
