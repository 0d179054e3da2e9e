"""Multiply-accumulates per output pixel of a decoder, layer by layer (a 512x512 image at 64 tokens).

Counted as ``benchmarks/decoder_eval.py`` counts them (convolutions, linear layers, attention); a
budget for a faster decoder starts from where these go. ``--config`` instead counts the new decoder
that a ``train-decoder`` config would start (random weights: its cost, not its pictures), and times
a render of a Kodak-sized image against the default decoder.

    python benchmarks/probes/decoder_macs.py [--decoder attention]
    python benchmarks/probes/decoder_macs.py --config configs/fast-decoder.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import vtcodec
from vtcodec.decoders import load_decoder
from vtcodec.decoders.rendering import Decoder
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


def best_render(decoder: Decoder) -> float:
    grid = TileGrid(768, 512, decoder.network.tile_size)
    ids = np.random.default_rng(0).integers(0, decoder.network.codebook_size, (grid.count, decoder.network.max_tokens))
    times = []
    for _ in range(4):  # the first warms up
        start = time.perf_counter()
        decoder.render(ids, np.full(grid.count, 64), grid)
        times.append(time.perf_counter() - start)
    return min(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decoder", default=None, help="a decoder name or file (default: the model's default)")
    parser.add_argument("--config", type=Path, help="a train-decoder config that starts a new decoder")
    args = parser.parse_args()
    model = vtcodec.load_model()
    decoder = load_decoder(model, args.decoder)
    if args.config is not None:
        from vtcodec.training.config import DecoderTrainConfig
        from vtcodec.training.warm_start import starting_network

        cfg = DecoderTrainConfig(**json.loads(args.config.read_text())["decoder_train"])
        network, cfg, _ = starting_network(str(vtcodec.zoo.model_path(None)), decoder.name, cfg)
        network = network.eval().requires_grad_(False).to(memory_format=torch.channels_last)
        new = Decoder(args.config.stem, model.model_id, network, "grid", grid_from=cfg.grid_from)
        print(f"render of 768x512 at 64 tokens, best of 3: {decoder.name} {best_render(decoder):.3f} s, ", end="")
        print(f"{new.name} {best_render(new):.3f} s")
        decoder = new
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
