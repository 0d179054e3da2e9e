"""Rate-quality of a vtcodec model on a folder of images (Kodak by default).

    python benchmarks/kodak_eval.py [--images ../shared/data/kodak] [--tokens 16 32 64 128 256] [--model PATH]
        [--decoder NAME_OR_FILE] [--format-version 1] [--precision float32]

Prints, per token setting: mean bpp from whole-file bytes, mean PSNR-RGB (uint8),
mean MS-SSIM (if pytorch-msssim is installed), bits per token against raw log2(V),
and encode / decode ms per image. Writes --json if given. Images are scored as
`vtcodec bench` scores them (`vtcodec.bench.Metrics`).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

import vtcodec
from vtcodec.bench import Metrics
from vtcodec.codec import render, tokenize
from vtcodec.decoders import load_decoder
from vtcodec.imageio import open_image
from vtcodec.pipeline import Layout, pack_tokens, read_tokens

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    parser.add_argument("--tokens", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    parser.add_argument("--model", default=None)
    parser.add_argument("--decoder", default=None, help="a decoder of the model, by name or file [its default]")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")
    parser.add_argument("--json", default=None, help="write the table here")
    parser.add_argument(
        "--format-version", type=int, default=1, choices=[1, 2], help="1 (one payload) keeps tables comparable [1]"
    )
    parser.add_argument("--precision", default="float32", choices=["auto", "float32", "bfloat16"])
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = vtcodec.load_model(args.model)
    decoder = load_decoder(model, args.decoder, precision=args.precision)
    files = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    files = files[: args.limit] if args.limit else files
    if not files:
        raise SystemExit(f"no images in {args.images}")
    raw_bits = math.log2(model.codebook_size)
    metrics = Metrics()  # the scoring of `vtcodec bench`
    rows = []
    for n in args.tokens:
        stats: dict[str, list[float]] = {
            k: [] for k in ("bpp", "psnr", "msssim", "bits_per_token", "enc_ms", "dec_ms", "enc_ms_tile", "dec_ms_tile")
        }
        for path in files:
            image = open_image(path)
            pixels = np.asarray(image)
            t0 = time.perf_counter()
            tokens = tokenize(image, model)
            data = pack_tokens(tokens, np.full(tokens.grid.count, n), model, layout=Layout(args.format_version))
            t1 = time.perf_counter()
            decoded = np.asarray(render(read_tokens(data, model), decoder=decoder))
            t2 = time.perf_counter()
            stats["bpp"].append(8 * len(data) / (image.width * image.height))
            scores = metrics(pixels, decoded)
            stats["psnr"].append(scores["psnr-rgb"])
            if not math.isnan(scores["ms-ssim"]):
                stats["msssim"].append(scores["ms-ssim"])
            stats["bits_per_token"].append(8 * len(data) / (tokens.grid.count * n) if n else 0.0)
            stats["enc_ms"].append(1000 * (t1 - t0))
            stats["dec_ms"].append(1000 * (t2 - t1))
            stats["enc_ms_tile"].append(1000 * (t1 - t0) / tokens.grid.count)
            stats["dec_ms_tile"].append(1000 * (t2 - t1) / tokens.grid.count)
        row = {"tokens": n, **{k: float(np.mean(v)) if v else None for k, v in stats.items()}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\nmodel {model.model_id.hex()}, {len(files)} images from {args.images}, raw log2(V) = {raw_bits:.2f} bits")
    print(
        "| tokens/tile | bpp | PSNR-RGB (dB) | MS-SSIM | bits/token (file) | encode ms | decode ms | enc ms/tile "
        "| dec ms/tile |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        msssim = f"{r['msssim']:.4f}" if r["msssim"] is not None else "n/a"
        print(
            f"| {r['tokens']} | {r['bpp']:.4f} | {r['psnr']:.2f} | {msssim} | {r['bits_per_token']:.2f} "
            f"| {r['enc_ms']:.0f} | {r['dec_ms']:.0f} | {r['enc_ms_tile']:.1f} | {r['dec_ms_tile']:.1f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"model_id": model.model_id.hex(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
