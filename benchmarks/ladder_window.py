"""Byte budgets with cheaper measurements: the whole length ladder against a few lengths around the
answer, or against the whole ladder measured with a cheaper (proxy) decoder.

For a budget, the largest uniform token count n that fits needs no network (entropy coding only).
The RD table is then measured only at lengths around n (``rate.window_lengths``: multiples of n,
plus 0 and every token; what ``fit_bytes`` does since 2026-12-05) and the allocation is compared at
equal bytes with the one from the whole ladder (``rate.LADDER``, what it did before): PSNR-RGB of the
files decoded with the default decoder, the number of decodes each needed and the seconds they took.
``--proxy DECODER`` adds a third allocation, the whole ladder measured with that decoder (a name or a
decoder file), the file still decoded with the default, and a fourth, ``corrected``: the proxy's
table with each tile's SSE rescaled to the default decoder's at a few lengths around n
(the ratio interpolated in log space between them).

    python benchmarks/ladder_window.py --images ../shared/data/train/bsds500/val --limit 8 --bpp 0.02 0.04 0.08
    python benchmarks/ladder_window.py ... --proxy runs/fast-a/decoder.safetensors
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
from vtcodec.rate import WINDOW, window_lengths

ANCHORS = (0.5, 1.0, 2.0)  # corrected: the default decoder's lengths, in multiples of n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--bpp", type=float, nargs="+", default=[0.02, 0.04, 0.08])
    parser.add_argument("--proxy", help="a cheaper decoder (name or file) to measure the whole ladder with")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model = vtcodec.load_model()
    decoder = load_decoder(model)
    proxy = load_decoder(model, args.proxy) if args.proxy else None
    k = model.config.max_tokens
    files = sorted(p for p in args.images.iterdir() if p.suffix.lower() in (".png", ".jpg"))[: args.limit]
    rows = []
    for path in files:
        pixels = np.asarray(Image.open(path).convert("RGB"))
        tokens = vtcodec.tokenize(pixels, model)
        full, full_s = timed(pixels, tokens, model, decoder)
        proxied = timed(pixels, tokens, model, proxy) if proxy is not None else None
        for bpp in args.bpp:
            budget = int(bpp * pixels.shape[0] * pixels.shape[1] / 8)
            uniform = fit_uniform_bytes(tokens, model, budget)
            n = 0 if uniform is None else int(uniform.counts[0])
            lengths = window_lengths(n, k)
            tables = {"ladder": (full, full_s)}
            tables["window"] = timed(pixels, tokens, model, decoder, lengths)
            if proxied is not None:
                tables["proxy"] = proxied
                anchors = np.array(sorted({min(k, max(1, round(f * n))) for f in ANCHORS}))
                start = time.perf_counter()
                table = corrected(proxied[0], pixels, tokens, decoder, anchors)
                tables["corrected"] = (table, proxied[1] + time.perf_counter() - start)
            row = {"image": path.name, "bpp": bpp, "uniform_tokens": n}
            for name, (table, seconds) in tables.items():
                result = fit_bytes(pixels, tokens, model, budget, table=table, decoder=decoder)
                row[name] = {
                    "bytes": len(result.data),
                    "psnr": psnr_rgb(pixels, decoder.render(tokens.ids, result.counts, tokens.grid)),
                    "decodes": len(table.lengths) + (len(anchors) if name == "corrected" else 0),
                    "seconds": round(seconds, 3),
                }
            rows.append(row)
            report = ", ".join(f"{name} {row[name]['psnr']:.3f} dB ({row[name]['bytes']} B)" for name in tables)
            print(f"{path.name} {bpp}: n={n} {report}", flush=True)
    variants = [name for name in ("window", "proxy", "corrected") if name in rows[0]]
    print("\n| bpp | PSNR, whole ladder | " + " | ".join(f"{v}: difference, decodes, time" for v in variants) + " |")
    print("|---|---|" + "---|" * len(variants))
    for bpp in args.bpp:
        mine = [r for r in rows if r["bpp"] == bpp]
        base = float(np.mean([r["ladder"]["psnr"] for r in mine]))
        base_s = float(np.mean([r["ladder"]["seconds"] for r in mine]))
        cells = []
        for v in variants:
            diff = float(np.mean([r[v]["psnr"] - r["ladder"]["psnr"] for r in mine]))
            worst = float(np.min([r[v]["psnr"] - r["ladder"]["psnr"] for r in mine]))
            decodes = float(np.mean([r[v]["decodes"] for r in mine]))
            share = float(np.mean([r[v]["seconds"] for r in mine])) / base_s
            cells.append(f"{diff:+.3f} dB (worst {worst:+.3f}), {decodes:.1f}, {share:.2f} of the ladder's time")
        print(f"| {bpp} | {base:.3f} | " + " | ".join(cells) + " |")
    if args.json:
        record = {"images": str(args.images), "window": WINDOW, "proxy": args.proxy, "rows": rows}
        args.json.write_text(json.dumps(record, indent=1) + "\n")


def corrected(table: rate.RDTable, pixels: np.ndarray, tokens, decoder, anchors: np.ndarray) -> rate.RDTable:
    """``table`` (measured with a cheaper decoder) with each tile's SSE rescaled to ``decoder``'s.

    ``decoder`` is measured at the ``anchors`` lengths only; each tile's ratio of its SSE to the
    table's there is interpolated in log space over the table's lengths (held beyond the ends).
    """
    anchors = np.asarray(anchors)
    truth = rate.tile_sse(pixels, tokens, decoder, anchors)
    cheap = table.sse_interpolated()[:, anchors]
    log_ratio = np.log((truth + 1.0) / (cheap + 1.0))
    scale = np.exp(np.stack([np.interp(table.lengths, anchors, row) for row in log_ratio]))
    return rate.RDTable(table.bits, table.lengths, table.sse * scale, table.pixels)


def timed(pixels, tokens, model, decoder, lengths=None) -> tuple[rate.RDTable, float]:
    """``rate.measure`` of these arguments and the seconds it took."""
    start = time.perf_counter()
    table = rate.measure(pixels, tokens, model, decoder, lengths=lengths)
    return table, time.perf_counter() - start


if __name__ == "__main__":
    main()
