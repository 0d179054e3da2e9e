"""Cutting an RGB image into fixed-size tiles and putting them back.

Tiles are taken in raster order (left to right, then top to bottom) over a grid
of ``ceil(width / T) x ceil(height / T)``. Edge tiles are padded by repeating the
last row and column; :func:`place_tiles` writes decoded tiles back, cropping the padding.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from vtcodec.tile_grid import TileGrid

TILE_BATCH = 32  # tiles per forward pass: bounds memory for any image size


def iter_tile_batches(pixels: np.ndarray, grid: TileGrid, batch: int) -> Iterator[torch.Tensor]:
    """Yield float tiles (B, 3, T, T) in [0, 1] from an (H, W, 3) uint8 array, ``batch`` at a time.

    Only one batch of tiles is materialized at a time, so memory stays bounded.
    """
    t = grid.tile
    for start in range(0, grid.count, batch):
        indices = range(start, min(start + batch, grid.count))
        out = np.empty((len(indices), t, t, 3), dtype=np.uint8)
        for j, index in enumerate(indices):
            y, x = grid.origin(index)
            patch = pixels[y : y + t, x : x + t]
            ph, pw = patch.shape[:2]
            if (ph, pw) != (t, t):
                patch = np.pad(patch, ((0, t - ph), (0, t - pw), (0, 0)), mode="edge")
            out[j] = patch
        yield torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0)


def place_tiles(canvas: np.ndarray, grid: TileGrid, start: int, tiles: torch.Tensor) -> None:
    """Write float tiles (B, 3, T, T) for indices ``start..`` into an (H, W, 3) uint8 canvas, cropping padding."""
    values = tiles.clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    for j, tile in enumerate(values):
        y, x = grid.origin(start + j)
        h = min(grid.tile, grid.height - y)
        w = min(grid.tile, grid.width - x)
        canvas[y : y + h, x : x + w] = tile[:h, :w]
