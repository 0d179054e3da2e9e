"""Tokenizer architectures, looked up by name through a small registry.

Every architecture implements the token-space seam (``vtcodec.models.seam.TokenSpace``): the grid
family (``conv-tokenizer``, vtcodec's own) and the TiTok family (``titok``, ``one-d-piece``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from vtcodec.models.seam import ModelConfig, TokenSpace
from vtcodec.models.titok import FAMILIES as TITOK_FAMILIES
from vtcodec.models.titok import TiTokConfig, TiTokTokenizer
from vtcodec.models.tokenizer import ConvTokenizer, TokenizerConfig

ARCHITECTURES: dict[str, tuple[type, Callable[..., nn.Module]]] = {
    "conv-tokenizer": (TokenizerConfig, ConvTokenizer),
    **{family: (TiTokConfig, TiTokTokenizer) for family in TITOK_FAMILIES},
}


def config_from_dict(data: dict) -> ModelConfig:
    """The config a model file stores (JSON), as the class its ``architecture`` names."""
    name = data.get("architecture", "conv-tokenizer")
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}")
    return ARCHITECTURES[name][0].from_dict(data)


def build_model(config: ModelConfig) -> TokenSpace:
    """Instantiate the architecture that ``config.architecture`` names."""
    try:
        _, factory = ARCHITECTURES[config.architecture]
    except KeyError:
        raise ValueError(f"unknown architecture {config.architecture!r}") from None
    return factory(config)


MAX_PARAMETERS = 100_000_000  # any grid-family network a file declares (the shipped ones: under 15 M)
_MAX_CHANNELS, _MAX_STAGES, _MAX_BLOCKS, _MAX_TILE = 4096, 8, 64, 1024


def declared_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor name and shape of the network ``config`` declares, found without allocating it.

    The network is built on PyTorch's ``meta`` device, after its hyper-parameters pass coarse
    bounds; ``ValueError`` if they do not, or if it would have more than ``MAX_PARAMETERS``
    parameters. Files are checked against this before any real network is built, so a small
    file cannot make vtcodec allocate a large one. A TiTok-family config is bounded by its
    preset sizes (One-D-Piece L: 642 M), and its file holds every tensor it declares.
    """
    if isinstance(config, TiTokConfig):
        with torch.device("meta"):
            return {name: tuple(t.shape) for name, t in build_model(config).state_dict().items()}
    blocks = [config.blocks_per_stage, config.encoder_blocks or 0, config.decoder_attention]
    blocks += list(config.decoder_blocks) if isinstance(config.decoder_blocks, tuple) else [config.decoder_blocks or 0]
    widths = [*config.channels, config.grid_channels, *(config.decoder_hidden or ())]
    if not (
        1 <= len(config.channels) <= _MAX_STAGES
        and all(isinstance(w, int) and 1 <= w <= _MAX_CHANNELS for w in widths)
        and all(isinstance(b, int) and 0 <= b <= _MAX_BLOCKS for b in blocks)
        and 16 <= config.tile_size <= _MAX_TILE
        and 0 <= config.fine_groups <= _MAX_BLOCKS
    ):
        raise ValueError("hyper-parameters out of range")
    with torch.device("meta"):
        network = build_model(config)
    shapes = {name: tuple(t.shape) for name, t in network.state_dict().items()}
    count = sum(math.prod(shape) for shape in shapes.values())
    if count > MAX_PARAMETERS:
        raise ValueError(f"{count} parameters, more than {MAX_PARAMETERS}")
    return shapes


__all__ = [
    "ARCHITECTURES",
    "MAX_PARAMETERS",
    "ConvTokenizer",
    "ModelConfig",
    "TiTokConfig",
    "TiTokTokenizer",
    "TokenSpace",
    "TokenizerConfig",
    "build_model",
    "config_from_dict",
    "declared_shapes",
]
