"""Multiply-accumulates per output pixel of a decoder, layer by layer (a 512x512 image at 64 tokens).

Counted as ``benchmarks/decoder_eval.py`` counts them (convolutions, linear layers, attention); a
budget for a faster decoder starts from where these go.

    python benchmarks/probes/decoder_macs.py [--decoder attention]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import vtcodec
from vtcodec.decoders import load_decoder
from vtcodec.models.blocks import AttentionBlock
from vtcodec.tile_grid import TileGrid

SIDE = 512


def layer_macs(module: torch.nn.Module, output: torch.Tensor) -> int:
    if isinstance(module, torch.nn.Conv2d):
        kernel = module.kernel_size[0] * module.kernel_size[1]
        return output.numel() * kernel * module.in_channels // module.groups
    if isinstance(module, torch.nn.Linear):
        return output.numel() * module.in_features
    b, c, h, w = output.shape  # attention: scores q.k and the weighted sum of v
    return 2 * b * (h * w) ** 2 * c


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decoder", default=None, help="a decoder name or file (default: the model's default)")
    args = parser.parse_args()
    decoder = load_decoder(vtcodec.load_model(), args.decoder)
    named = dict(decoder.network.named_modules())
    totals: dict[str, int] = {}

    def counter(name: str):
        top = ".".join(name.split(".")[:2])  # decoder.N, or a top-level layer

        def hook(module: torch.nn.Module, _inputs, output: torch.Tensor) -> None:
            totals[top] = totals.get(top, 0) + layer_macs(module, output)

        return hook

    kinds = (torch.nn.Conv2d, torch.nn.Linear, AttentionBlock)
    handles = [
        module.register_forward_hook(counter(name))
        for name, module in named.items()
        if isinstance(module, kinds) and not name.startswith("encoder")  # the encoder does not run
    ]
    grid = TileGrid(SIDE, SIDE, decoder.network.tile_size)
    decoder.render(np.zeros((grid.count, decoder.network.max_tokens), dtype=np.int64), np.full(grid.count, 64), grid)
    for handle in handles:
        handle.remove()
    pixels = SIDE * SIDE
    total = sum(totals.values()) / pixels
    print(f"{decoder.name}: {total:,.0f} MAC per pixel (whole-grid from layer {decoder.grid_from})")
    for name, macs in totals.items():
        print(f"  {name:12s} {type(named[name]).__name__:14s} {macs / pixels:8,.0f}")


if __name__ == "__main__":
    main()
