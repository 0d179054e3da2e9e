"""What the first layers of a version 2 file look like: the pictures of its byte prefixes.

    python benchmarks/progressive_strip.py ../shared/data/kodak/kodim23.png --tokens 64 \\
        --out results/pictures/kodim23-progressive.png

Encodes the image once (format version 2, the default ladder), cuts the file's bytes at
each layer boundary that ``vtcodec info`` reports (as an HTTP range request would), decodes
each prefix as a viewer would and draws them in a row, each labelled with its bytes.
Use Kodak only to look, never to choose.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

import vtcodec
from vtcodec import container


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--width", type=int, default=320, help="width of each picture in the strip")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    data = vtcodec.compress(Image.open(args.image), tokens=args.tokens)
    offsets = container.parse(data).layer_offsets
    pictures = []
    for offset in offsets[1:]:  # from the second layer on: the first is a few bytes of colour
        stream = vtcodec.read_tokens(data[:offset])
        held = stream.header.token_counts.max()
        pictures.append((vtcodec.render(stream).convert("RGB"), f"{offset} bytes ({held} tokens/tile)"))
    scale = args.width / pictures[0][0].width
    height = round(pictures[0][0].height * scale)
    strip = Image.new("RGB", (args.width * len(pictures), height + 24), "white")
    draw = ImageDraw.Draw(strip)
    for i, (picture, label) in enumerate(pictures):
        strip.paste(picture.resize((args.width, height), Image.Resampling.LANCZOS), (i * args.width, 0))
        draw.text((i * args.width + 6, height + 6), label, fill="black")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    strip.save(args.out)
    print(f"{args.out}: {len(pictures)} prefixes of a {len(data)}-byte file: " + ", ".join(p[1] for p in pictures))


if __name__ == "__main__":
    main()
