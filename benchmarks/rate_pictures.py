"""A grid of crops at several rates: the original, vtcodec's decoders, and downscaled WebP and AVIF at equal bytes.

    python benchmarks/rate_pictures.py IMAGE [--bpp 0.015 0.03 0.06] [--decoders grid perceptual] [--labels A B]
        [--box X Y SIZE] [--scale 2] [--out results/pictures/NAME.png]

One row per rate. vtcodec's file is made with ``--bpp`` rate control (measured with the
first decoder); every decoder decodes that same file, and WebP and AVIF get the largest
file that is not larger, downscaled by the factor (1/2 … 1/8) that gives the best
PSNR at that size, as ``vtcodec bench`` does. Each panel is labelled with its bytes,
PSNR, HaarPSI and (if installed) SSIMULACRA 2 over the whole image. Crops are enlarged
with nearest-neighbour so that nothing is smoothed for the viewer. Use Kodak only to
look, never to choose.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import vtcodec
from vtcodec.bench import SCALES, ScaledCodec, classic_codecs, largest_fitting
from vtcodec.imageio import open_image
from vtcodec.metrics import haarpsi, psnr_rgb, ssimulacra2


def downscaled_at(pixels: np.ndarray, name: str, budget: int) -> tuple[str, bytes, np.ndarray] | None:
    """The best-PSNR downscale of codec ``name`` whose file fits ``budget`` bytes."""
    base = classic_codecs()[name]
    size = (pixels.shape[1], pixels.shape[0])
    best = None
    for scale in SCALES:
        scaled = ScaledCodec(base, scale)
        hit = largest_fitting(lambda q, s=scaled: s.encode(pixels, q), base.q_min, base.q_max, budget)
        if hit is None:
            continue
        decoded = scaled.decode(hit[1], size)
        score = psnr_rgb(pixels, decoded)
        if best is None or score > best[0]:
            best = (score, f"{name} 1/{round(1 / scale)} q{hit[0]}", hit[1], decoded)
    return None if best is None else best[1:]


def label(pixels: np.ndarray, decoded: np.ndarray, name: str, size: int) -> str:
    s2 = ssimulacra2(pixels, decoded)
    tail = f" S2 {s2:.0f}" if math.isfinite(s2) else ""
    return f"{name}: {size} B\n{psnr_rgb(pixels, decoded):.2f} dB HaarPSI {haarpsi(pixels, decoded):.3f}{tail}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image")
    parser.add_argument("--bpp", type=float, nargs="+", default=[0.015, 0.03, 0.06])
    parser.add_argument("--decoders", nargs="+", default=["grid"])
    parser.add_argument("--labels", nargs="+", help="panel titles for the decoders [their names]")
    parser.add_argument("--codecs", nargs="*", default=["webp", "avif"])
    parser.add_argument("--box", type=int, nargs=3, default=[256, 128, 192], metavar=("X", "Y", "SIZE"))
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    labels = args.labels or args.decoders
    if len(labels) != len(args.decoders):
        parser.error("give one label per decoder")
    image = open_image(args.image)
    pixels = np.asarray(image)
    x, y, side = args.box
    rows = []
    for bpp in args.bpp:
        data = vtcodec.compress(image, bpp=bpp, decoder=args.decoders[0])
        panels = [("original", pixels, f"original\n{Path(args.image).name}, {bpp} bpp")]
        for name, title in zip(args.decoders, labels, strict=True):
            decoded = np.asarray(vtcodec.decompress(data, decoder=name))
            panels.append((name, decoded, label(pixels, decoded, f"vtcodec {title}", len(data))))
        for name in args.codecs:
            found = downscaled_at(pixels, name, len(data))
            if found is None:
                panels.append((name, np.full_like(pixels, 255), f"{name}: no file of {len(data)} B or less"))
            else:
                setting, blob, decoded = found
                panels.append((name, decoded, label(pixels, decoded, setting, len(blob))))
        rows.append(panels)
        print(f"{bpp} bpp: " + " | ".join(text.replace("\n", " ") for _, _, text in panels[1:]), flush=True)
    cell, label_h = side * args.scale, 40
    sheet = Image.new("RGB", (cell * len(rows[0]), (cell + label_h) * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, panels in enumerate(rows):
        top = r * (cell + label_h)
        for c, (_, decoded, text) in enumerate(panels):
            crop = Image.fromarray(decoded[y : y + side, x : x + side]).resize((cell, cell), Image.NEAREST)
            sheet.paste(crop, (c * cell, top + label_h))
            draw.multiline_text((c * cell + 4, top + 3), text, fill="black", spacing=2)
    out = Path(args.out or f"results/pictures/{Path(args.image).stem}.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    print(f"{out}: {len(rows)} rates x {len(rows[0])} panels, box {x},{y} size {side}")


if __name__ == "__main__":
    main()
