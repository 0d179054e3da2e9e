"""The tile grid of an image: the one place for its arithmetic (no numpy, no torch, so the container uses it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TileGrid:
    """The tile layout of a ``width x height`` image with ``tile`` x ``tile`` tiles."""

    width: int
    height: int
    tile: int

    @property
    def cols(self) -> int:
        return -(-self.width // self.tile)

    @property
    def rows(self) -> int:
        return -(-self.height // self.tile)

    @property
    def count(self) -> int:
        return self.cols * self.rows

    def origin(self, index: int) -> tuple[int, int]:
        """(y, x) of the top-left pixel of tile ``index``."""
        return (index // self.cols) * self.tile, (index % self.cols) * self.tile
