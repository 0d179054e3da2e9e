"""What the codec needs from a token space: the seam between tokenizers and the rest of vtcodec.

The container, the coders, rate control, truncation, batch runs, the bench, token export,
the datasets and the Pillow plugin see a tokenizer only through :class:`TokenSpace`:

- ``tile_size`` (T): the square tile it reads; images are cut into T x T tiles (edges padded);
- ``max_tokens`` (K) and ``codebook_size`` (V): each tile becomes K ids in [0, V);
- ``encode(tiles) -> ids`` and ``decode(ids, lengths) -> tiles``, pixels in [0, 1];
- ``any_prefix``: whether any prefix of a tile's K tokens decodes (tail-token-drop training), so
  that token counts below K, byte budgets, layers and truncation make sense;
- ``config``: its hyper-parameters, stored as JSON beside its weights (``to_dict``).

Two capabilities belong to the grid family alone (``vtcodec.models.tokenizer.ConvTokenizer``):
the digit-context prior, which reads a token's 2D neighbours (``vtcodec.zoo.context_layout``),
and whole-grid decoders that render all tiles at once (``vtcodec.decoders.rendering``). Any other
token space codes under per-position tables and decodes tile by tile.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class ModelConfig(Protocol):
    architecture: str
    tile_size: int
    max_tokens: int

    def to_dict(self) -> dict: ...


@runtime_checkable
class TokenSpace(Protocol):
    """A tokenizer as the codec uses it (an ``nn.Module``)."""

    config: ModelConfig

    @property
    def tile_size(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...

    @property
    def codebook_size(self) -> int: ...

    @property
    def any_prefix(self) -> bool: ...

    def encode(self, tiles: torch.Tensor) -> torch.Tensor:
        """Tiles (N, 3, T, T) float in [0, 1] -> token ids (N, K) int64."""
        ...

    def decode(self, ids: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Ids (N, n), n <= K, with each tile's first ``lengths[i]`` kept -> tiles (N, 3, T, T) in [0, 1]."""
        ...
