"""Probe (d) of the token-space issue: would the prior save bits by looking at the neighbouring tiles?

    python benchmarks/probes/tile_context_entropy.py [--model PATH] [--train-images 1400] [--test-images 100]

Whole images are tokenized tile by tile (training: bsds500 train and test and
imagenet-sample; held out: bsds500/val), so every tile knows its left and above tiles.
In a file's stream order (position-major, tiles in raster order) token ``j`` of the left
and the above tile comes before token ``j`` of a tile, so a decoder knows it: the
components added here are causal.

Digits are scored as in ``digit_context_entropy.py`` (count tables refined along a
back-off chain, smoothing picked on the first half of the held-out tiles, bits reported on
the second half). Components, besides that script's ``g``, ``L``, ``A``, ``P``, ``1``:

- ``T``, ``V``: digit ``d`` of the token at the same position in the tile to the left /
  above (0 = no such tile, else digit + 1);
- ``N``: the left tile's digit if there is a left tile, else the above tile's.

The shipped prior is the chain ``!1,g1,gP1,gLP1,gLAP1``; the issue asks for the saving of
the tile contexts on top of it (build them only if they save at least 5 %).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from context_entropy import DATA
from digit_context_entropy import Tokens, chain_bits

import vtcodec
from vtcodec.imageio import open_image
from vtcodec.pipeline import tokenize_pixels
from vtcodec.training.data import list_images
from vtcodec.zoo import context_layout

SHIPPED = "!1,g1,gP1,gLP1,gLAP1"
CHAINS = [SHIPPED, f"{SHIPPED},gLAPN1", f"{SHIPPED},gLAPT1,gLAPTV1", f"{SHIPPED},gPT1,gPTV1", "!1,g1,gN1,gPN1,gLAPN1"]


class TileTokens(Tokens):
    """Tokens of whole images' tiles, with the digits of each tile's left and above tiles."""

    def __init__(self, images: list[tuple[np.ndarray, int]], levels, group_of, neighbours) -> None:
        ids = np.concatenate([tile_ids for tile_ids, _ in images])
        super().__init__(ids, levels, group_of, neighbours)
        left, above = [], []
        offset = 0
        for tile_ids, cols in images:
            index = np.arange(len(tile_ids))
            left.append(np.where(index % cols > 0, offset + index - 1, -1))
            above.append(np.where(index >= cols, offset + index - cols, -1))
            offset += len(tile_ids)
        self.tile = {"T": np.concatenate(left), "V": np.concatenate(above)}

    def part(self, name: str, d: int) -> tuple[np.ndarray, int]:
        if name in "TV":
            where = self.tile[name]
            values = np.where(where[:, None] >= 0, self.digits[np.maximum(where, 0), :, d] + 1, 0)
            return values, self.levels[d] + 1
        if name == "N":
            left, _ = self.part("T", d)
            above, radix = self.part("V", d)
            return np.where(left > 0, left, above), radix
        return super().part(name, d)


def tokenized(model, folders: list[Path], limit: int, seed: int) -> list[tuple[np.ndarray, int]]:
    files = list_images(folders)
    files = [files[i] for i in np.random.default_rng(seed).permutation(len(files))[:limit]]
    out = []
    for path in files:
        tokens = tokenize_pixels(np.asarray(open_image(path)), model)
        out.append((tokens.ids, tokens.grid.cols))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model")
    parser.add_argument("--train-images", type=int, default=1400)
    parser.add_argument("--test-images", type=int, default=100)
    parser.add_argument("--chains", nargs="*", default=CHAINS)
    args = parser.parse_args()
    model = vtcodec.load_model(args.model)
    folders = [DATA / "bsds500" / "train", DATA / "bsds500" / "test", DATA / "imagenet-sample"]
    train_images = tokenized(model, folders, args.train_images, seed=1)
    test_images = tokenized(model, [DATA / "bsds500" / "val"], args.test_images, seed=2)
    levels = list(model.config.fsq_levels)
    _, group_of, neighbours = context_layout(model.model)
    train = TileTokens(train_images, levels, group_of, neighbours)
    test = TileTokens(test_images, levels, group_of, neighbours)
    half = len(test.digits) // 2
    print(
        f"model {model.model_id.hex()}: {len(train.digits)} training tiles from {len(train_images)} images, "
        f"{len(test.digits)} held-out tiles from {len(test_images)} (bits on the last {len(test.digits) - half})"
    )
    print("| context chain | bits/token | vs the shipped chain |")
    print("|---|---|---|")
    reference = None
    for chain in args.chains:
        value = chain_bits(train, test, chain, half)
        reference = value if reference is None else reference
        print(f"| {chain} | {value:.3f} | {100 * (1 - value / reference):+.1f} % |", flush=True)


if __name__ == "__main__":
    main()
