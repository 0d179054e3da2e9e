"""Grow a trained decoder without changing what it computes (Net2Net-style, for the decoder alone).

``grow_decoder(network, decoder_blocks=..., decoder_hidden=..., decoder_attention=...)``
returns a network whose decoder has more residual blocks per stage, wider residual
blocks or self-attention blocks, and whose output equals the old one's:

- new residual and attention blocks start as the identity (their last layer is zero);
- a widened residual block keeps its old inner channels; the new ones get fresh
  weights in, and zero weights out.

The encoder, the quantizer and every other tensor are copied unchanged, so the token
space stays the same. Layers are matched by position: which stage (the upsamplings
before it), which kind, and which one of that kind within the stage.
"""

from __future__ import annotations

import torch
from torch import nn

from vtcodec.models import build_model
from vtcodec.models.tokenizer import (
    DECODER_ARCHITECTURE,
    AttentionBlock,
    ConvTokenizer,
    ResBlock,
    TokenizerConfig,
    Upsample,
)


def layer_keys(decoder: nn.Sequential) -> list[tuple[int, str, int]]:
    """(stage, kind, ordinal) of every decoder layer: its stage counts the upsamplings before it."""
    keys, stage, seen = [], 0, {}
    for layer in decoder:
        kind = type(layer).__name__
        ordinal = seen.get((stage, kind), 0)
        seen[(stage, kind)] = ordinal + 1
        keys.append((stage, kind, ordinal))
        if isinstance(layer, Upsample | nn.PixelShuffle):
            stage += 1
    return keys


def map_index(source: ConvTokenizer, target: ConvTokenizer, index: int) -> int:
    """The index in ``target``'s decoder of the layer at ``index`` in ``source``'s (or the end)."""
    old = layer_keys(source.decoder)
    if index >= len(old):
        return len(target.decoder)
    return layer_keys(target.decoder).index(old[index])


def grow_decoder(network: ConvTokenizer, **architecture: object) -> ConvTokenizer:
    """A copy of ``network`` with the decoder hyper-parameters ``architecture`` and the same output."""
    unknown = set(architecture) - set(DECODER_ARCHITECTURE)
    if unknown:
        raise ValueError(f"only the decoder can grow here, not {', '.join(sorted(unknown))}")
    target = build_model(TokenizerConfig.from_dict({**network.config.to_dict(), **architecture}))  # lists -> tuples
    state = target.state_dict()
    source_state = network.state_dict()
    for name, value in source_state.items():
        if not name.startswith("decoder."):
            state[name] = value.clone()
    target_keys = layer_keys(target.decoder)
    for index, key in enumerate(layer_keys(network.decoder)):
        if key not in target_keys:
            raise ValueError(f"the grown decoder has no layer {key}: a decoder can only grow")
        new_index = target_keys.index(key)
        old_layer, new_layer = network.decoder[index], target.decoder[new_index]
        for name, value in old_layer.state_dict().items():
            full = f"decoder.{new_index}.{name}"
            if state[full].shape == value.shape:
                state[full] = value.clone()
            elif isinstance(old_layer, ResBlock):
                state[full] = _widen(name, value, state[full])
            else:
                shapes = f"{tuple(value.shape)} -> {tuple(state[full].shape)}"
                raise ValueError(f"decoder layer {key} changed shape {shapes}")
        if isinstance(new_layer, AttentionBlock | ResBlock) and not isinstance(old_layer, type(new_layer)):
            raise ValueError(f"decoder layer {key} changed kind")
    target.load_state_dict(state)
    return target


def _widen(name: str, old: torch.Tensor, fresh: torch.Tensor) -> torch.Tensor:
    """A residual block's tensor with more inner channels: old channels kept, new ones in fresh, out zero."""
    grown = fresh.clone()
    if name.startswith("conv1."):  # (hidden, C, k, k) or (hidden,): new inner channels keep their fresh init
        if old.shape[0] > grown.shape[0]:
            raise ValueError("a residual block can only grow wider")
        grown[: old.shape[0]] = old
    elif name == "conv2.weight":  # (C, hidden, k, k): the new inner channels contribute nothing yet
        if old.shape[1] > grown.shape[1]:
            raise ValueError("a residual block can only grow wider")
        grown.zero_()
        grown[:, : old.shape[1]] = old
    else:
        raise ValueError(f"unexpected residual block tensor {name}")
    return grown


def fresh_parameters(network: ConvTokenizer, grown: ConvTokenizer) -> set[str]:
    """Names of ``grown``'s decoder parameters that belong to layers ``network`` did not have."""
    old = set(layer_keys(network.decoder))
    return {
        f"decoder.{index}.{name}"
        for index, key in enumerate(layer_keys(grown.decoder))
        if key not in old
        for name, _ in grown.decoder[index].named_parameters()
    }
