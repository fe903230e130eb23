"""LongformerModel: embeddings, the layer stack and the pooler, with inputs checked at the door."""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..errors import Errors
from .allocator import keep_freed_memory
from .attention import ATTN_IMPLEMENTATIONS, AttentionMask
from .config import LongformerConfig
from .hf_checkpoint import HFCheckpointMixin
from .layers import LongformerEmbeddings, LongformerLayer, init_weights, roberta_position_ids
from .output import LongformerOutput


class LongformerModel(HFCheckpointMixin, nn.Module):
    """The Longformer encoder, same numbers as transformers' ``LongformerModel``.

    Inputs of any length up to ``config.max_tokens`` are accepted as they are: no padding to a
    multiple of the window is needed, and windows of any even size can be mixed across layers.

    ``attn_implementation``: ``auto`` (banded fast attention picked for the device and dtype; the
    reference path when attention probabilities are asked for), ``sdpa``, ``gemm`` or
    ``reference``. ``gradient_checkpointing`` recomputes each layer in the backward pass instead of
    keeping its activations (training only).
    """

    hf_architecture = "LongformerModel"

    def __init__(
        self,
        config: LongformerConfig,
        *,
        add_pooling_layer: bool = True,
        attn_implementation: str = "auto",
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        _check_implementation(attn_implementation)
        self.config = config
        self.gradient_checkpointing = gradient_checkpointing
        self.embeddings = LongformerEmbeddings(config)
        self.layers = nn.ModuleList(
            [
                LongformerLayer(config, layer=i, attn_implementation=attn_implementation)
                for i in range(config.num_hidden_layers)
            ]
        )
        self.pooler = nn.Linear(config.hidden_size, config.hidden_size) if add_pooling_layer else None
        self.apply(partial(init_weights, std=config.initializer_range))

    @property
    def attn_implementation(self) -> str:
        return self.layers[0].attention.attn_implementation

    def set_attn_implementation(self, name: str) -> None:
        _check_implementation(name)
        for layer in self.layers:
            layer.attention.attn_implementation = name

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word = value

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        global_attention_mask: Tensor | None = None,
        head_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        return_dict: bool = True,
    ) -> LongformerOutput | tuple[Tensor, ...]:
        """input_ids / masks: (batch, seq); inputs_embeds: (batch, seq, hidden).

        ``attention_mask``: 1 for real tokens, 0 for padding. ``global_attention_mask``: 1 for
        tokens that attend to, and are attended by, every token. ``head_mask``: (layers, heads)
        or (heads,), multiplies the attention probabilities.
        """
        config = self.config
        batch, seq_len = _input_shape(input_ids, inputs_embeds, config)
        if input_ids is not None and input_ids.dtype not in (torch.long, torch.int):
            input_ids = input_ids.long()  # uint8, int16: ids all the same, which embeddings refuse
        device = input_ids.device if input_ids is not None else inputs_embeds.device
        if device.type == "cpu":
            keep_freed_memory()
        for name, tensor in (
            ("attention_mask", attention_mask),
            ("global_attention_mask", global_attention_mask),
            ("token_type_ids", token_type_ids),
            ("position_ids", position_ids),
        ):
            if tensor is not None and tuple(tensor.shape) != (batch, seq_len):
                raise ValueError(
                    Errors.LF024.format(name=name, shape=tuple(tensor.shape), expected=(batch, seq_len))
                )
        if attention_mask is None:
            attention_mask = torch.ones(batch, seq_len, dtype=torch.long, device=device)
        elif attention_mask.numel():
            bad = (attention_mask != 0) & (attention_mask != 1) & (attention_mask != 2)
            if bool(bad.any()):
                row, col = (int(i) for i in bad.nonzero()[0])
                value = attention_mask[row, col].item()
                raise ValueError(Errors.LF034.format(value=value, position=(row, col)))
        if token_type_ids is None:
            token_type_ids = torch.zeros(batch, seq_len, dtype=torch.long, device=device)
        elif token_type_ids.numel() and int(token_type_ids.max()) >= config.type_vocab_size:
            raise ValueError(
                Errors.LF033.format(value=int(token_type_ids.max()), type_vocab_size=config.type_vocab_size)
            )
        if position_ids is None:
            position_ids = self._default_positions(input_ids, batch, seq_len, device)
        elif position_ids.numel() and int(position_ids.max()) >= config.max_position_embeddings:
            raise ValueError(
                Errors.LF027.format(
                    position_id=int(position_ids.max()), max_positions=config.max_position_embeddings
                )
            )
        head_masks = self._layer_head_masks(head_mask)
        mask = AttentionMask.from_masks(attention_mask, global_attention_mask)

        hidden = self.embeddings(
            input_ids=input_ids,
            inputs_embeds=inputs_embeds,
            position_ids=position_ids,
            token_type_ids=token_type_ids,
        )
        # Kept only when asked for: 13 copies of (seq x hidden) would double a forward's memory.
        all_hidden: list[Tensor] = [hidden] if output_hidden_states else []
        local_probs: list[Tensor] = []
        global_probs: list[Tensor] = []
        for layer, layer_head_mask in zip(self.layers, head_masks, strict=True):
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                out = checkpoint(
                    layer,
                    hidden,
                    mask,
                    head_mask=layer_head_mask,
                    output_attentions=output_attentions,
                    use_reentrant=False,
                )
            else:
                out = layer(hidden, mask, head_mask=layer_head_mask, output_attentions=output_attentions)
            hidden = out.context
            if output_hidden_states:
                all_hidden.append(hidden)
            if output_attentions:
                local_probs.append(out.local_probs)
                if out.global_probs is not None:
                    global_probs.append(self._hf_global_layout(out.global_probs, mask, layer_head_mask))
        output = LongformerOutput(
            last_hidden_state=hidden,
            pooler_output=torch.tanh(self.pooler(hidden[:, 0])) if self.pooler is not None else None,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(local_probs) if output_attentions else None,
            global_attentions=tuple(global_probs) if global_probs else None,
        )
        return output if return_dict else output.to_tuple()

    def _default_positions(
        self, input_ids: Tensor | None, batch: int, seq_len: int, device: torch.device
    ) -> Tensor:
        config = self.config
        if input_ids is None:
            n_tokens = seq_len
            start = config.pad_token_id + 1
            positions = torch.arange(start, start + seq_len, device=device).expand(batch, seq_len)
        else:
            positions = roberta_position_ids(input_ids, padding_idx=config.pad_token_id)
            n_tokens = int((input_ids != config.pad_token_id).sum(dim=1).max()) if input_ids.numel() else 0
        if n_tokens > config.max_tokens:
            raise ValueError(
                Errors.LF020.format(
                    length=n_tokens,
                    max_positions=config.max_position_embeddings,
                    pad=config.pad_token_id,
                    limit=config.max_tokens,
                )
            )
        return positions

    def _layer_head_masks(self, head_mask: Tensor | None) -> list[Tensor | None]:
        n_layers, n_heads = self.config.num_hidden_layers, self.config.num_attention_heads
        if head_mask is None:
            return [None] * n_layers
        if tuple(head_mask.shape) == (n_heads,):
            return [head_mask] * n_layers
        if tuple(head_mask.shape) == (n_layers, n_heads):
            return list(head_mask)
        raise ValueError(
            Errors.LF026.format(shape=tuple(head_mask.shape), n_layers=n_layers, n_heads=n_heads)
        )

    def _hf_global_layout(self, probs: Tensor, mask: AttentionMask, head_mask: Tensor | None) -> Tensor:
        """(batch, heads, x, seq) -> (batch, heads, seq, x), with transformers' filler in empty slots.

        transformers soft-maxes an empty slot's all-masked row over the input padded to a multiple
        of the largest window, giving 1 / padded_length; we reproduce it so outputs compare whole.
        """
        largest = max(self.config.attention_window)
        seq_len = probs.shape[-1]
        padded_length = -(-seq_len // largest) * largest
        filler = torch.full_like(probs, 1.0 / padded_length)
        if head_mask is not None:
            filler = filler * head_mask.view(1, -1, 1, 1)
        empty = ~mask.global_tokens.valid[:, None, :, None]
        return torch.where(empty, filler, probs).transpose(2, 3)


def _check_implementation(name: str) -> None:
    if name not in ATTN_IMPLEMENTATIONS:
        raise ValueError(Errors.LF030.format(value=name, options=", ".join(ATTN_IMPLEMENTATIONS)))


def _input_shape(
    input_ids: Tensor | None, inputs_embeds: Tensor | None, config: LongformerConfig
) -> tuple[int, int]:
    if input_ids is not None and inputs_embeds is not None:
        raise ValueError(Errors.LF022)
    if input_ids is None and inputs_embeds is None:
        raise ValueError(Errors.LF023)
    if inputs_embeds is not None:
        if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != config.hidden_size:
            raise ValueError(
                Errors.LF025.format(shape=tuple(inputs_embeds.shape), hidden_size=config.hidden_size)
            )
        if inputs_embeds.shape[1] == 0:
            raise ValueError(Errors.LF036.format(name="inputs_embeds", shape=tuple(inputs_embeds.shape)))
        return inputs_embeds.shape[0], inputs_embeds.shape[1]
    if input_ids.dim() != 2:
        raise ValueError(
            Errors.LF024.format(name="input_ids", shape=tuple(input_ids.shape), expected="(batch, sequence)")
        )
    if input_ids.is_floating_point() or input_ids.is_complex() or input_ids.dtype == torch.bool:
        raise ValueError(Errors.LF035.format(dtype=input_ids.dtype))
    if input_ids.shape[1] == 0:
        raise ValueError(Errors.LF036.format(name="input_ids", shape=tuple(input_ids.shape)))
    if input_ids.numel():
        bad = (input_ids < 0) | (input_ids >= config.vocab_size)
        if bool(bad.any()):
            row, col = (int(i) for i in bad.nonzero()[0])
            raise ValueError(
                Errors.LF021.format(
                    token_id=int(input_ids[row, col]), position=(row, col), vocab_size=config.vocab_size
                )
            )
    return input_ids.shape[0], input_ids.shape[1]
