"""Which knob gives the same visual quality on different images: token count, RD slope or PSNR target.

For each held-out photo the RD table (``vtcodec.rate.measure``) is measured once; then
each family of settings allocates token counts, the file is packed and decoded, and
PSNR-RGB, MS-SSIM and SSIMULACRA 2 are measured. A knob that gives "the same
quality" on different images is one whose scores spread little across images at a
given mean rate; the summary prints each family's spread (standard deviation across
images) of the untrained metrics, interpolated at common mean bpp.

- ``tokens``: the same count in every tile (``--tokens``);
- ``slope``: every tile stops where a bit buys less than ``lambda`` SSE (a fixed RD
  slope, what a fixed quantizer gives a classic codec);
- ``psnr``: the fewest bits whose measured PSNR-RGB reaches a target.

    python benchmarks/quality_calibration.py --images ../shared/data/train/bsds500/val --limit 24 \\
        --json results/quality-calibration.json
    python benchmarks/quality_calibration.py --images ../shared/data/train/bsds500/val --skip 24 --limit 16 \\
        --validate 0 25 50 70 90 100 --json results/quality-validation.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

import vtcodec
from vtcodec import rate
from vtcodec.codec import fit_quality
from vtcodec.decoders import load_decoder
from vtcodec.metrics import METRICS
from vtcodec.pipeline import Layout, pack_tokens

FAMILIES = {
    "tokens": [2, 4, 8, 16, 32, 64, 128, 256],
    "slope": [float(v) for v in np.geomspace(3e5, 1e2, 12)],
    "psnr": [16.0, 18.0, 20.0, 22.0, 24.0, 26.0, 28.0, 30.0],
}
SCORES = ("psnr-rgb", "ms-ssim", "ssimulacra2")


def counts_for(family: str, value: float, table: rate.RDTable, max_tokens: int) -> np.ndarray:
    tiles = len(table.bits)
    if family == "tokens":
        return np.full(tiles, min(int(value), max_tokens))
    if family == "slope":
        return rate.allocate_for_slope(table, value)
    max_sse = rate.sse_for_psnr(table.pixels, value)
    counts = rate.allocate_for_sse(table, max_sse)
    return np.full(tiles, max_tokens) if counts is None else counts


def measure_image(path: Path, model, decoder) -> list[dict]:
    pixels = np.asarray(Image.open(path).convert("RGB"))
    tokens = vtcodec.tokenize(pixels, model)
    table = rate.measure(pixels, tokens, model, decoder)
    rows = []
    for family, values in FAMILIES.items():
        for value in values:
            counts = counts_for(family, value, table, model.config.max_tokens)
            size = len(pack_tokens(tokens, counts, model))
            decoded = decoder.render(tokens.ids, counts, tokens.grid)
            scores = {m: METRICS[m](pixels, decoded) for m in SCORES}
            bpp = 8 * size / (pixels.shape[0] * pixels.shape[1])
            rows.append({"image": path.name, "family": family, "value": value, "bpp": bpp, **scores})
    return rows


def spread_at(rows: list[dict], family: str, metric: str, bpp_levels: list[float]) -> list[float | None]:
    """Across-image standard deviation of ``metric`` at each mean bpp level, interpolated between settings."""
    values = FAMILIES[family]
    mean_bpp, spread = [], []
    for value in values:
        hits = [r for r in rows if r["family"] == family and r["value"] == value]
        mean_bpp.append(float(np.mean([r["bpp"] for r in hits])))
        spread.append(float(np.std([r[metric] for r in hits])))
    order = np.argsort(mean_bpp)
    xs, ys = np.log(np.array(mean_bpp)[order]), np.array(spread)[order]
    out = []
    for level in bpp_levels:
        x = math.log(level)
        out.append(round(float(np.interp(x, xs, ys)), 4) if xs[0] <= x <= xs[-1] else None)
    return out


def quality_anchors(rows: list[dict]) -> list[tuple[float, float]]:
    """(quality, slope) pairs: quality 0 … 100 rises linearly with the mean MS-SSIM of the slope settings."""
    means = []
    for value in FAMILIES["slope"]:
        means.append(float(np.mean([r["ms-ssim"] for r in rows if r["family"] == "slope" and r["value"] == value])))
    low, high = means[0], means[-1]
    pairs = zip(means, FAMILIES["slope"], strict=True)
    return [(round(100 * (m - low) / (high - low), 1), round(v, 1)) for m, v in pairs]


def report(result: dict) -> None:
    rows = result["rows"]
    print(f"across-image standard deviation at mean bpp {result['bpp_levels']}")
    for family, metrics in result["spread"].items():
        for metric, values in metrics.items():
            print(f"{family:7s} {metric:12s} " + "  ".join("  -   " if v is None else f"{v:6.3f}" for v in values))
    print("\nmeans over the images, per setting")
    for family, values in FAMILIES.items():
        for value in values:
            hits = [r for r in rows if r["family"] == family and r["value"] == value]
            means = [float(np.mean([r[k] for r in hits])) for k in ("bpp", *SCORES)]
            scores = "  ".join(f"{m} {v:.3f}" for m, v in zip(SCORES, means[1:], strict=True))
            print(f"{family:7s} {value:10.1f}  bpp {means[0]:.4f}  {scores}")
    print("\nquality anchors (quality, slope):", quality_anchors(rows))


def validate(files: list[Path], qualities: list[float], model, decoder) -> dict:
    """What ``vtcodec encode -q Q`` gives on photos the calibration did not see: means and spreads per Q."""
    per_q: dict[float, list[dict]] = {q: [] for q in qualities}
    for path in files:
        pixels = np.asarray(Image.open(path).convert("RGB"))
        tokens = vtcodec.tokenize(pixels, model)
        for q in qualities:
            result = fit_quality(pixels, tokens, model, q, decoder=decoder)  # what codec.encode(quality=q) does
            counts, size = result.counts, len(result.data)
            size_v1 = len(pack_tokens(tokens, counts, model, layout=Layout(version=1)))  # no layers' framing
            decoded = decoder.render(tokens.ids, counts, tokens.grid)
            scores = {m: METRICS[m](pixels, decoded) for m in SCORES}
            per_q[q].append(
                {
                    "bpp": 8 * size / (pixels.shape[0] * pixels.shape[1]),
                    "bpp-v1": 8 * size_v1 / (pixels.shape[0] * pixels.shape[1]),
                    "tokens": float(counts.mean()),
                    **scores,
                }
            )
        print(f"validated {path.name}", flush=True)
    out = {}
    for q, rows in per_q.items():
        out[str(q)] = {k: round(float(np.mean([r[k] for r in rows])), 4) for k in ("bpp", "bpp-v1", "tokens", *SCORES)}
        out[str(q)].update({f"{k}-sd": round(float(np.std([r[k] for r in rows])), 4) for k in ("bpp", *SCORES)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path)
    parser.add_argument("--limit", type=int, default=24)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--summarize", action="store_true", help="Only print the summary of an earlier --json.")
    parser.add_argument("--skip", type=int, default=0, help="Leave out the first N images (validation).")
    parser.add_argument(
        "--validate", type=float, nargs="+", help="Qualities to check with the shipped mapping instead of calibrating."
    )
    args = parser.parse_args()
    if args.summarize:
        report(json.loads(args.json.read_text()))
        return
    files = sorted(p for p in args.images.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    files = files[args.skip : args.skip + args.limit]
    model = vtcodec.load_model()
    decoder = load_decoder(model)
    if args.validate:
        result = {"images": str(args.images), "skip": args.skip, "count": len(files)}
        result["qualities"] = validate(files, args.validate, model, decoder)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
        print("| quality | bpp (mean, sd) | tokens/tile | PSNR-RGB | MS-SSIM (mean, sd) | SSIMULACRA 2 |")
        for q, r in result["qualities"].items():
            print(
                f"| {float(q):g} | {r['bpp']:.4f} ({r['bpp-sd']:.4f}) | {r['tokens']:.0f} | {r['psnr-rgb']:.2f} | "
                f"{r['ms-ssim']:.3f} ({r['ms-ssim-sd']:.3f}) | {r['ssimulacra2']:.1f} |"
            )
        return
    rows = []
    for i, path in enumerate(files):
        rows += measure_image(path, model, decoder)
        print(f"{i + 1}/{len(files)} {path.name}", flush=True)
    levels = [0.01, 0.02, 0.04, 0.08, 0.16]
    summary = {family: {metric: spread_at(rows, family, metric, levels) for metric in SCORES} for family in FAMILIES}
    result = {"images": str(args.images), "count": len(files), "bpp_levels": levels, "spread": summary, "rows": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    report(result)


if __name__ == "__main__":
    main()
