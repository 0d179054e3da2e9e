"""Crops for people: the original beside each decoder's picture of the same file.

    python benchmarks/decoder_pictures.py IMAGE [--tokens 64] [--decoders tiled grid] [--box X Y SIZE]
        [--labels A B] [--out results/decoders/kodim23-t64.png]

Encodes IMAGE once with the default model, decodes the file with every decoder,
and writes one PNG: a crop of each, side by side (original first), enlarged 2x
with nearest-neighbour so that tile seams stay visible. The default box straddles
a tile corner (128-pixel grid).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import vtcodec
from vtcodec.imageio import open_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--decoders", nargs="+", default=["tiled", "grid"])
    parser.add_argument("--box", type=int, nargs=3, default=[192, 192, 128], metavar=("X", "Y", "SIZE"))
    parser.add_argument("--labels", nargs="+", help="panel titles for the decoders [their names]")
    parser.add_argument("--out", default="decoders.png")
    args = parser.parse_args()
    labels = args.labels or args.decoders
    if len(labels) != len(args.decoders):
        parser.error("give one label per decoder")
    image = open_image(args.image)
    data = vtcodec.compress(image, tokens=args.tokens)
    x, y, size = args.box
    bpp = 8 * len(data) / (image.width * image.height)
    panels = [(f"original ({args.tokens} tokens: {bpp:.3f} bpp)", np.asarray(image))]
    panels += [
        (label, np.asarray(vtcodec.decompress(data, decoder=name)))
        for name, label in zip(args.decoders, labels, strict=True)
    ]
    scale, label_h = 2, 18
    sheet = Image.new("RGB", (len(panels) * size * scale, size * scale + label_h), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (name, pixels) in enumerate(panels):
        crop = Image.fromarray(pixels[y : y + size, x : x + size]).resize((size * scale, size * scale), Image.NEAREST)
        sheet.paste(crop, (i * size * scale, label_h))
        draw.text((i * size * scale + 4, 3), name, fill="black")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"{args.out}: {' | '.join(name for name, _ in panels)}, box {x},{y} size {size}, {len(data)} bytes")


if __name__ == "__main__":
    main()
