"""Byte budgets with fewer decodes: the whole length ladder against a few lengths around the answer.

For a budget, the largest uniform token count n that fits needs no network (entropy coding only).
The RD table is then measured only at lengths around n (multiples of n, plus 0 and
every token), and the allocation is compared at equal bytes with the one from the whole ladder:
PSNR-RGB of the decoded files, and the number of decodes each needed.

    python benchmarks/ladder_window.py --images ../shared/data/train/bsds500/val --limit 8 --bpp 0.02 0.04 0.08
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

import vtcodec
from vtcodec import rate
from vtcodec.codec import fit_bytes, fit_uniform_bytes
from vtcodec.decoders import load_decoder
from vtcodec.metrics import psnr_rgb

WINDOW = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)


def window_lengths(n: int, k: int, factors: tuple[float, ...]) -> np.ndarray:
    """0, every token, and ``factors`` times n (each at least 1), within 0 … k."""
    return np.array(sorted({0, k, *(min(k, max(1, round(f * n))) for f in factors)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--bpp", type=float, nargs="+", default=[0.02, 0.04, 0.08])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model = vtcodec.load_model()
    decoder = load_decoder(model)
    k = model.config.max_tokens
    files = sorted(p for p in args.images.iterdir() if p.suffix.lower() in (".png", ".jpg"))[: args.limit]
    rows = []
    for path in files:
        pixels = np.asarray(Image.open(path).convert("RGB"))
        tokens = vtcodec.tokenize(pixels, model)
        start = time.perf_counter()
        full = rate.measure(pixels, tokens, model, decoder)
        full_s = time.perf_counter() - start
        for bpp in args.bpp:
            budget = int(bpp * pixels.shape[0] * pixels.shape[1] / 8)
            uniform = fit_uniform_bytes(tokens, model, budget)
            n = 0 if uniform is None else int(uniform.counts[0])
            lengths = window_lengths(n, k, WINDOW)
            start = time.perf_counter()
            small = rate.measure(pixels, tokens, model, decoder, lengths=lengths)
            small_s = time.perf_counter() - start
            row = {"image": path.name, "bpp": bpp, "uniform_tokens": n, "decodes": [len(full.lengths), len(lengths)]}
            for name, table in (("ladder", full), ("window", small)):
                result = fit_bytes(pixels, tokens, model, budget, table=table, decoder=decoder)
                row[name] = {
                    "bytes": len(result.data),
                    "psnr": psnr_rgb(pixels, decoder.render(tokens.ids, result.counts, tokens.grid)),
                }
            row["seconds"] = [round(full_s, 2), round(small_s, 2)]
            rows.append(row)
            print(
                f"{path.name} {bpp}: n={n} ladder {row['ladder']['psnr']:.3f} dB ({row['ladder']['bytes']} B), "
                f"window {row['window']['psnr']:.3f} dB ({row['window']['bytes']} B), decodes {row['decodes']}",
                flush=True,
            )
    print("\n| bpp | PSNR, whole ladder | PSNR, window | difference | decodes (ladder → window) |")
    print("|---|---|---|---|---|")
    for bpp in args.bpp:
        mine = [r for r in rows if r["bpp"] == bpp]
        a = float(np.mean([r["ladder"]["psnr"] for r in mine]))
        b = float(np.mean([r["window"]["psnr"] for r in mine]))
        decodes = (np.mean([r["decodes"][0] for r in mine]), np.mean([r["decodes"][1] for r in mine]))
        print(f"| {bpp} | {a:.3f} | {b:.3f} | {b - a:+.3f} dB | {decodes[0]:.0f} → {decodes[1]:.1f} |")
    if args.json:
        args.json.write_text(json.dumps({"images": str(args.images), "window": WINDOW, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
