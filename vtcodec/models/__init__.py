"""Tokenizer architectures, looked up by name through a small registry."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from vtcodec.models.tokenizer import ConvTokenizer, TokenizerConfig

ARCHITECTURES: dict[str, Callable[[TokenizerConfig], nn.Module]] = {
    "conv-tokenizer": ConvTokenizer,
}


def build_model(config: TokenizerConfig) -> ConvTokenizer:
    """Instantiate the architecture that ``config.architecture`` names."""
    try:
        factory = ARCHITECTURES[config.architecture]
    except KeyError:
        raise ValueError(f"unknown architecture {config.architecture!r}") from None
    return factory(config)


__all__ = ["ARCHITECTURES", "ConvTokenizer", "TokenizerConfig", "build_model"]
