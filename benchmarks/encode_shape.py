"""What fixed encoder passes cost: vtcodec.pipeline.encode_tiles against one pass over all of an image's tiles.

    python benchmarks/encode_shape.py [--images ../shared/data/kodak] [--limit 6] [--shapes 2 4 8]

The old path (before 2026-12-05) ran the encoder once over all tiles of an image as they come
from the HWC pixels; ``encode_tiles`` runs passes of ``ENCODE_SHAPE`` tiles in channels-last memory
so that tokens do not depend on the batch. Prints the time of each, best of 3, per Kodak image
and for a one-tile image, and the ratio to the old path, measured in the same run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import vtcodec
from vtcodec import pipeline
from vtcodec.imageio import open_image
from vtcodec.tile_grid import TileGrid
from vtcodec.tiling import TILE_BATCH, iter_tile_batches

ROOT = Path(__file__).resolve().parent.parent


def best(fn, repeats: int = 3) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    parser.add_argument("--limit", type=int, default=6)
    parser.add_argument("--shapes", type=int, nargs="+", default=[2, 4, 8])
    args = parser.parse_args()
    model = vtcodec.load_model()
    pictures = [np.asarray(open_image(p)) for p in sorted(Path(args.images).glob("*.png"))[: args.limit]]
    pictures.append(np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8))
    labels = [f"{len(pictures) - 1} images of {args.images}", "one 128x128 tile"]

    def old_path(pixels: np.ndarray) -> None:
        grid = TileGrid(pixels.shape[1], pixels.shape[0], model.config.tile_size)
        with torch.no_grad():
            for tiles in iter_tile_batches(pixels, grid, TILE_BATCH):
                model.model.encode(tiles)

    def new_path(pixels: np.ndarray) -> None:
        grid = TileGrid(pixels.shape[1], pixels.shape[0], model.config.tile_size)
        for tiles in iter_tile_batches(pixels, grid, TILE_BATCH):
            pipeline.encode_tiles(model, tiles)

    groups = [pictures[:-1], pictures[-1:]]
    old = [sum(best(lambda p=p: old_path(p)) for p in group) / len(group) for group in groups]
    print(f"threads {torch.get_num_threads()}; one pass over all tiles: " + ", ".join(
        f"{label} {1000 * t:.1f} ms" for label, t in zip(labels, old, strict=True)))  # fmt: skip
    saved = dict(pipeline.ENCODE_SHAPE)
    try:
        for shape in args.shapes:
            pipeline.ENCODE_SHAPE["cpu"] = shape
            new = [sum(best(lambda p=p: new_path(p)) for p in group) / len(group) for group in groups]
            print(f"passes of {shape}: " + ", ".join(
                f"{label} {1000 * t:.1f} ms ({t / o:.2f}x)" for label, t, o in zip(labels, new, old, strict=True)
            ))  # fmt: skip
    finally:
        pipeline.ENCODE_SHAPE.update(saved)


if __name__ == "__main__":
    main()
