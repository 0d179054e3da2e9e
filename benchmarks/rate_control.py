"""Byte-budget accuracy and the gain of RD allocation over a uniform token count, at equal bytes.

    python benchmarks/rate_control.py [--images ../shared/data/kodak] [--bpp 0.02 0.04 0.08] [--limit N] [--model M]
        [--format-version 1|2]

For each image and budget B = bpp x W x H / 8: the RD-allocated file (``--bytes B``)
and the largest uniform token count whose file fits B. Prints the mean and worst
ratio bytes/B of the RD files, and the mean PSNR-RGB of both at each budget.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import vtcodec
from vtcodec import rate
from vtcodec.codec import fit_bytes, fit_uniform_bytes, render, tokenize
from vtcodec.decoders import load_decoder
from vtcodec.imageio import open_image
from vtcodec.metrics import psnr_rgb
from vtcodec.pipeline import Layout, read_tokens

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    parser.add_argument("--bpp", type=float, nargs="+", default=[0.02, 0.04, 0.08])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--model", default=None, help="a model file (default: the shipped default)")
    parser.add_argument("--format-version", type=int, default=2, choices=[1, 2])
    args = parser.parse_args()
    model = vtcodec.load_model(args.model)
    layout = Layout(args.format_version)
    files = sorted(Path(args.images).glob("*.png"))[: args.limit]
    ratios: list[float] = []
    rows = {b: {"rd": [], "uniform": [], "rd_bpp": [], "uniform_bpp": []} for b in args.bpp}
    for path in files:
        image = open_image(path)
        pixels = np.asarray(image)
        tokens = tokenize(pixels, model)
        table = rate.measure(pixels, tokens, model, load_decoder(model))
        for bpp in args.bpp:
            budget = int(bpp * image.width * image.height / 8)
            rd = fit_bytes(pixels, tokens, model, budget, table, layout=layout)
            uniform = fit_uniform_bytes(tokens, model, budget, layout=layout)
            ratios.append(len(rd.data) / budget)
            if uniform is not None:  # compare on the images where both exist
                rows[bpp]["rd"].append(psnr_rgb(pixels, render(read_tokens(rd.data, model))))
                rows[bpp]["rd_bpp"].append(8 * len(rd.data) / (image.width * image.height))
                rows[bpp]["uniform"].append(psnr_rgb(pixels, render(read_tokens(uniform.data, model))))
                rows[bpp]["uniform_bpp"].append(8 * len(uniform.data) / (image.width * image.height))
        print(f"{path.name} done", flush=True)
    landing = f"--bytes lands at mean {np.mean(ratios):.4f} x budget, worst {np.min(ratios):.4f}"
    print(f"\nformat version {args.format_version}; {len(files)} images; {landing}")
    print("| budget bpp | RD bpp | RD PSNR | uniform bpp | uniform PSNR | RD gain (dB) |")
    print("|---|---|---|---|---|---|")
    for bpp, r in rows.items():
        gain = np.mean(r["rd"]) - np.mean(r["uniform"]) if r["uniform"] else float("nan")
        print(
            f"| {bpp} | {np.mean(r['rd_bpp']):.4f} | {np.mean(r['rd']):.2f} | {np.mean(r['uniform_bpp']):.4f} "
            f"| {np.mean(r['uniform']):.2f} | {gain:+.2f} |"
        )


if __name__ == "__main__":
    main()
