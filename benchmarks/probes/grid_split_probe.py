"""Where the decoder should start to see the whole grid: an untrained probe of ``grid_from``.

    python benchmarks/probes/grid_split_probe.py [--images ../shared/data/train/bsds500/val] [--limit 16]
        [--tokens 16 64] [--splits 0 1 5 9 13 17] [--decoder FILE]

Takes one 384x256 center crop (2 x 3 tiles) of each held-out image, tokenizes it
with the default model and decodes it with the model's own decoder weights,
unchanged, run per tile up to layer ``grid_from`` and over the whole grid from
there on (``ConvTokenizer.render_mosaic``). ``grid_from`` = the number of decoder
layers is the tiled decoder. Prints PSNR-RGB and the seam ratio (``vtcodec.seams``)
of every split. With ``--decoder`` it scores a trained decoder file's weights instead.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import vtcodec
from vtcodec.codec import tokenize
from vtcodec.decoders import load_decoder
from vtcodec.decoders.rendering import Decoder
from vtcodec.metrics import psnr_rgb
from vtcodec.seams import seam_ratio
from vtcodec.training.decoder import held_out_crops

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=str(ROOT.parent / "shared" / "data" / "train" / "bsds500" / "val"))
    parser.add_argument("--limit", type=int, default=16)
    parser.add_argument("--tokens", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--splits", type=int, nargs="+", default=[0, 1, 5, 9, 13, 17])
    parser.add_argument("--decoder", default=None, help="a decoder file whose weights to split [the model's own]")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = vtcodec.load_model()
    network = load_decoder(model, args.decoder).network if args.decoder else model.model
    layers = len(network.decoder)
    crops = held_out_crops(args.images, model.config.tile_size, args.limit)
    pixels = [c.mul(255).round().byte().permute(1, 2, 0).numpy() for c in crops]
    tokens = [tokenize(p, model) for p in pixels]
    print(f"{len(pixels)} crops of 384x256 from {args.images}; {layers} decoder layers; tiled = grid_from {layers}")
    print("| grid_from | " + " | ".join(f"PSNR @{n} | seam @{n}" for n in args.tokens) + " |")
    print("|---|" + "---|---|" * len(args.tokens))
    for split in [*args.splits, layers]:
        decoder = Decoder("probe", model.model_id, network, "grid" if split < layers else "tile", grid_from=split)
        cells = []
        for n in args.tokens:
            scores, seams = [], []
            for p, t in zip(pixels, tokens, strict=True):
                decoded = decoder.render(t.ids, np.full(t.grid.count, n), t.grid)
                scores.append(psnr_rgb(p, decoded))
                seams.append(seam_ratio(p, decoded, model.config.tile_size))
            cells.append(f"{np.mean(scores):.2f} | {np.mean(seams):.2f}")
        name = f"{split} (tiled)" if split == layers else str(split)
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
