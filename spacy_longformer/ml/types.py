"""Data passed between the encoder, its listeners and the pipes, per Doc."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import srsly
from thinc.api import get_array_module
from thinc.types import Floats2d, Ragged


@dataclass
class LongformerData:
    """The encoder's output for one Doc: ``doc._.longformer``.

    Pieces are the byte-level BPE pieces of the whole text, framed as ``<s> ... </s>``; for a doc
    that fits one window ``input_ids`` equals the checkpoint tokenizer's ids for ``doc.text``.
    Longer docs run as overlapping ``windows`` of pieces (index ranges into ``input_ids``, each
    run with its own ``<s>``/``</s>``), merged back with each piece taken from the window where
    it had the most context.

    input_ids: (n_pieces,); last_hidden_state: (n_pieces, hidden); global_attention_mask:
    (n_pieces,) 1 for pieces global in the windows they fall in; alignment: one row of piece
    indices per token. window_states: (n_windows, hidden) the ``<s>`` state of every window, which
    document-level heads pool (the first equals ``last_hidden_state[0]``). We keep no per-layer
    tensors here, so a Doc stays light.

    A QA doc's pieces are ``<s> question </s></s> context </s>``; every window repeats the pieces
    before ``context_start`` (1, just ``<s>``, for a doc read as one text).

    Gradients into the encoder are, per doc, an array shaped like ``last_hidden_state`` or a pair
    ``(d_last_hidden_state, d_window_states)``.
    """

    input_ids: np.ndarray
    last_hidden_state: Floats2d
    global_attention_mask: np.ndarray
    alignment: Ragged
    windows: list[tuple[int, int]] = field(default_factory=list)
    window_states: Floats2d | None = None
    context_start: int = 1

    @property
    def n_pieces(self) -> int:
        return len(self.input_ids)

    @property
    def width(self) -> int:
        return self.last_hidden_state.shape[1]

    def token_vectors(self) -> Floats2d:
        """Mean of each token's pieces: (n_tokens, hidden). What ``doc.tensor`` holds."""
        xp = get_array_module(self.last_hidden_state)
        lengths = self.alignment.lengths
        if len(lengths) == 0:
            return xp.zeros((0, self.width), dtype="f")
        rows = self.last_hidden_state[xp.asarray(self.alignment.dataXd)]
        ends = np.cumsum(lengths)
        sums = xp.add.reduceat(rows, xp.asarray(ends - lengths), axis=0)
        return (sums / xp.asarray(lengths, dtype="f")[:, None]).astype("f")

    def to_cpu(self) -> LongformerData:
        """A copy whose arrays are numpy, so docs never hold GPU memory."""
        return replace(
            self,
            last_hidden_state=_numpy(self.last_hidden_state),
            window_states=None if self.window_states is None else _numpy(self.window_states),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_ids": self.input_ids,
            "last_hidden_state": self.to_cpu().last_hidden_state,
            "global_attention_mask": self.global_attention_mask,
            "alignment": {
                "data": np.asarray(self.alignment.dataXd),
                "lengths": np.asarray(self.alignment.lengths),
            },
            "windows": [list(w) for w in self.windows],
            "window_states": self.to_cpu().window_states,
            "context_start": self.context_start,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LongformerData:
        return cls(
            input_ids=np.asarray(data["input_ids"]),
            last_hidden_state=np.asarray(data["last_hidden_state"], dtype="f"),
            global_attention_mask=np.asarray(data["global_attention_mask"]),
            alignment=Ragged(np.asarray(data["alignment"]["data"]), np.asarray(data["alignment"]["lengths"])),
            windows=[tuple(w) for w in data["windows"]],
            window_states=None
            if data.get("window_states") is None
            else np.asarray(data["window_states"], dtype="f"),
            context_start=int(data.get("context_start", 1)),
        )


def _numpy(array: Floats2d) -> np.ndarray:
    return np.asarray(array if isinstance(array, np.ndarray) else array.get(), dtype="f")


@srsly.msgpack_encoders("spacy_longformer.LongformerData")
def _serialize_longformer_data(obj: Any, chain: Any = None) -> Any:
    """Docs carrying ``doc._.longformer`` go through ``Doc.to_bytes`` and ``DocBin``."""
    if isinstance(obj, LongformerData):
        return {"__longformer_data__": obj.to_dict()}
    return obj if chain is None else chain(obj)


@srsly.msgpack_decoders("spacy_longformer.LongformerData")
def _deserialize_longformer_data(obj: Any, chain: Any = None) -> Any:
    if isinstance(obj, dict) and "__longformer_data__" in obj:
        return LongformerData.from_dict(obj["__longformer_data__"])
    return obj if chain is None else chain(obj)
