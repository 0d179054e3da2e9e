"""Decoding in bfloat16 against float32: time, pixel differences and PSNR, on the same tokens.

    python benchmarks/decode_precision.py [--images ../shared/data/kodak] [--limit 8] [--tokens 16 64 256]
        [--threads 2] [--json results/decode-precision.json]

Each image is tokenized once; the default decoder renders the same tokens with
``precision="float32"`` and ``"bfloat16"`` (alternating, the best of ``--repeat`` runs each), and
the script prints the time ratio, the largest pixel difference and the PSNR-RGB of both against
the original. bfloat16 is the default (``precision="auto"``) only where the CPU runs it natively
(AVX512-BF16 or AMX; ``vtcodec.decoders.rendering.native_bf16``); it prints whether this one does.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import vtcodec
from vtcodec.codec import tokenize
from vtcodec.decoders import load_decoder
from vtcodec.decoders.rendering import native_bf16
from vtcodec.imageio import open_image
from vtcodec.metrics import psnr_rgb

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--tokens", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = vtcodec.load_model()
    decoders = {p: load_decoder(model, precision=p) for p in ("float32", "bfloat16")}
    files = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    rows = {n: {"float32": [], "bfloat16": [], "psnr32": [], "psnr16": [], "diff": []} for n in args.tokens}
    for path in files[: args.limit]:
        image = open_image(path)
        pixels = np.asarray(image)
        tokens = tokenize(image, model)
        for n in args.tokens:
            counts = np.full(tokens.grid.count, n)
            best = {p: float("inf") for p in decoders}
            out = {}
            for _ in range(args.repeat):
                for precision, decoder in decoders.items():
                    start = time.perf_counter()
                    out[precision] = decoder.render(tokens.ids, counts, tokens.grid)
                    best[precision] = min(best[precision], time.perf_counter() - start)
            row = rows[n]
            row["float32"].append(best["float32"])
            row["bfloat16"].append(best["bfloat16"])
            row["psnr32"].append(psnr_rgb(pixels, out["float32"]))
            row["psnr16"].append(psnr_rgb(pixels, out["bfloat16"]))
            row["diff"].append(int(np.abs(out["float32"].astype(int) - out["bfloat16"].astype(int)).max()))
        print(f"{path.name} done", flush=True)
    print(
        f"{min(args.limit, len(files))} images from {args.images}; {args.threads} threads; native bf16 here: "
        f"{native_bf16('cpu')}"
    )
    print("| tokens | float32 s | bfloat16 s | speed-up | largest pixel difference | PSNR float32 | PSNR bfloat16 |")
    print("|---|---|---|---|---|---|---|")
    summary = []
    for n, row in rows.items():
        f32, b16 = float(np.mean(row["float32"])), float(np.mean(row["bfloat16"]))
        p32, p16 = float(np.mean(row["psnr32"])), float(np.mean(row["psnr16"]))
        summary.append(
            {
                "tokens": n,
                "float32_s": f32,
                "bfloat16_s": b16,
                "max_diff": max(row["diff"]),
                "psnr_float32": p32,
                "psnr_bfloat16": p16,
            }
        )
        print(f"| {n} | {f32:.3f} | {b16:.3f} | {f32 / b16:.2f}x | {max(row['diff'])} | {p32:.3f} | {p16:.3f} |")
    if args.json:
        record = {"images": args.images, "threads": args.threads, "native_bf16": native_bf16("cpu"), "rows": summary}
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
