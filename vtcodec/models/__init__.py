"""Tokenizer architectures, looked up by name through a small registry.

Every architecture implements the token-space seam (``vtcodec.models.seam.TokenSpace``): the grid
family (``conv-tokenizer``, vtcodec's own) and the TiTok family (``titok``, ``one-d-piece``).
"""

from __future__ import annotations

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
TITOK_MAX_PARAMETERS = 700_000_000  # the largest published TiTok-family model, One-D-Piece L: 642 M
_MAX_CHANNELS, _MAX_STAGES, _MAX_BLOCKS, _MAX_TILE = 4096, 8, 64, 1024


def _check_grid_bounds(config: TokenizerConfig) -> None:
    """``ValueError`` unless a grid-family config's widths, depths and tile lie within coarse bounds."""
    blocks = [config.blocks_per_stage, config.encoder_blocks or 0, config.decoder_attention]
    blocks += list(config.decoder_blocks) if isinstance(config.decoder_blocks, tuple) else [config.decoder_blocks or 0]
    widths = [*config.channels, config.grid_channels, *(config.decoder_hidden or ()), *(config.decoder_channels or ())]
    if not (
        1 <= len(config.channels) <= _MAX_STAGES
        and all(isinstance(w, int) and 1 <= w <= _MAX_CHANNELS for w in widths)
        and all(isinstance(b, int) and 0 <= b <= _MAX_BLOCKS for b in blocks)
        and 16 <= config.tile_size <= _MAX_TILE
        and 0 <= config.fine_groups <= _MAX_BLOCKS
    ):
        raise ValueError("hyper-parameters out of range")


def declared_network(config: ModelConfig) -> nn.Module:
    """The network ``config`` declares, built on PyTorch's ``meta`` device: shapes, no memory.

    A grid-family config must first pass coarse bounds (a TiTok-family config checks its own on
    creation); ``ValueError`` if it does not, or if the network would have more parameters than its
    family's bound (``MAX_PARAMETERS``, ``TITOK_MAX_PARAMETERS``). Files are checked against this
    before any real network is built, so a small file cannot make vtcodec allocate a large one.
    """
    titok = isinstance(config, TiTokConfig)
    if not titok:
        _check_grid_bounds(config)
    with torch.device("meta"):
        network = build_model(config)
    count = sum(t.numel() for t in network.state_dict().values())
    bound = TITOK_MAX_PARAMETERS if titok else MAX_PARAMETERS
    if count > bound:
        raise ValueError(f"{count} parameters, more than {bound}")
    return network


def inference_network(network: nn.Module, state: dict[str, torch.Tensor], absent_ok: tuple[str, ...] = ()) -> nn.Module:
    """``network``, declared on the meta device (:func:`declared_network`), holding ``state``'s tensors as
    they are, in eval mode and without gradients: how every loaded network is made.

    No random initialisation and no second copy of the weights; the network's constant buffers are
    already CPU tensors. No gradients, because under bfloat16 autocast a weight that requires them is
    cast once and cached for the whole region, a second copy of a decoder (75 MB more peak on a 768x512
    decode); training builds its own copy. Parameters whose names start with ``absent_ok`` may be
    missing from ``state`` (a token-space file has no decoder): they become zeros that take no memory
    (one zero broadcast to the shape), placeholders to be replaced, not trained. ``ValueError`` if any
    other tensor is missing or left over.
    """
    missing, unexpected = network.load_state_dict(state, strict=False, assign=True)
    refused = [k for k in missing if not k.startswith(absent_ok)] + list(unexpected)
    if refused:
        raise ValueError(f"tensors do not fit the declared architecture: {refused[:3]}")
    for module in network.modules():
        for name, tensor in list(module.named_parameters(recurse=False)):
            if tensor.is_meta:
                placeholder = torch.zeros((), dtype=tensor.dtype).expand(tensor.shape)
                setattr(module, name, nn.Parameter(placeholder, requires_grad=False))
        if any(buffer.is_meta for buffer in module.buffers(recurse=False)):
            raise ValueError(f"{type(module).__name__} has a buffer that is not a CPU constant")
    return network.eval().requires_grad_(False)


def declared_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor name and shape of the network ``config`` declares (:func:`declared_network`)."""
    return {name: tuple(t.shape) for name, t in declared_network(config).state_dict().items()}


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
    "declared_network",
    "declared_shapes",
    "inference_network",
]
