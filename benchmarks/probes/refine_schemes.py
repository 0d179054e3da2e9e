"""Which coarse ladder and refinement factors to measure for a PSNR or quality target, tried offline.

Each photo's RD table is measured once over the whole ladder (``rate.LADDER``); a scheme is then
simulated without decoding: its coarse lengths are read off that table, its first allocation made,
each tile "measured" at the scheme's factors times its count (read off the whole ladder's
interpolation, which stands in for a real decode) and allocated again, once per round. Each scheme
runs with chords between measured lengths (``/linear``) and with a power law (``/log``, what
``rate.coarse_to_fine`` uses since 2026-12-06). Reported: the bytes (ideal
bits) against the whole ladder's allocation at the same PSNR target, and against the same slope's
objective for quality. The shipped choice is then checked with real decodes by
``benchmarks/target_refine.py``.

    python benchmarks/probes/refine_schemes.py --images ../shared/data/train/bsds500/val --limit 12
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import numpy as np
from PIL import Image

import vtcodec
from vtcodec import rate
from vtcodec.codec import slope_for_quality
from vtcodec.decoders import load_decoder

SCHEMES = {
    "2x:4+4+3": ((4, 16, 64, 256), ((0.5, 0.75, 1.5, 2.0), (0.85, 1.0, 1.2))),
    "2x:4+3+3": ((4, 16, 64, 256), ((0.6, 1.0, 1.6), (0.8, 1.0, 1.25))),
    "2x:5+4+2": ((4, 16, 64, 128, 256), ((0.6, 0.8, 1.25, 1.6), (0.9, 1.1))),
    "2x:5+3+3": ((4, 16, 64, 128, 256), ((0.6, 1.0, 1.6), (0.8, 1.0, 1.25))),
    "coarse4+5": ((2, 8, 32, 128), (0.5, 0.75, 1.0, 1.5, 2.0)),
    "coarse4+7": ((2, 8, 32, 128), (0.5, 0.7, 0.85, 1.0, 1.2, 1.4, 2.0)),
    "coarse6+5": ((4, 16, 48, 96, 192, 320), (0.5, 0.75, 1.0, 1.5, 2.0)),
    "coarse5+5": ((4, 16, 64, 128, 256), (0.6, 0.8, 1.0, 1.25, 1.6)),
    "coarse5+6": ((4, 16, 64, 128, 256), (0.5, 0.7, 0.85, 1.0, 1.2, 1.5)),
    "coarse7+4": ((4, 16, 32, 64, 128, 192, 320), (0.7, 0.85, 1.0, 1.2)),
}


def simulate(truth: np.ndarray, bits: np.ndarray, coarse, factors, allocate, pixels: int, kind=rate.RDTable):
    k = bits.shape[1] - 1
    lengths = rate.coarse_lengths(k, coarse)
    table = kind(bits, lengths, truth[:, lengths], pixels)
    for round_factors in factors if isinstance(factors[0], tuple) else (factors,):
        counts = allocate(table)
        if counts is None:
            counts = np.full(len(bits), k)
        around = np.stack([np.clip(np.round(f * counts), 1, k) for f in round_factors], axis=1).astype(np.int64)
        rows = []
        for old, extra in zip(table.tile_lengths(), around, strict=True):
            rows.append(sorted(set(old.tolist()) | set(extra.tolist())))
        width = max(map(len, rows))
        padded = np.array([r + r[-1:] * (width - len(r)) for r in rows])
        table = kind(bits, padded, np.take_along_axis(truth, padded, axis=1), pixels)
    return allocate(table)


def schemes():
    """Each scheme with linear and with power-law interpolation."""
    for name, (coarse, factors) in SCHEMES.items():
        yield name + "/linear", (coarse, factors, rate.RDTable)
        yield name + "/log", (coarse, factors, functools.partial(rate.RDTable, power_law=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=12)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/tables"))
    args = parser.parse_args()
    model = vtcodec.load_model()
    decoder = load_decoder(model)
    files = sorted(p for p in args.images.iterdir() if p.suffix.lower() in (".png", ".jpg"))[: args.limit]
    results = {name: {"psnr": [], "quality": []} for name, _ in schemes()}
    schemes_list = list(schemes())
    for path in files:
        cached = args.cache / f"{path.stem}.npz"
        if cached.exists():
            saved = np.load(cached)
            table = rate.RDTable(saved["bits"], saved["lengths"], saved["sse"], int(saved["pixels"]))
        else:
            pixels = np.asarray(Image.open(path).convert("RGB"))
            table = rate.measure(pixels, vtcodec.tokenize(pixels, model), model, decoder)
            np.savez(cached, bits=table.bits, lengths=table.lengths, sse=table.sse, pixels=table.pixels)
        truth = table.sse_interpolated()  # chords between the whole ladder's 28 lengths
        bits, rows = table.bits, np.arange(len(table.bits))
        for n in (16, 64, 192):
            max_sse = table.sse[:, list(table.lengths).index(n)].sum()
            dense = rate.RDTable(bits, np.arange(bits.shape[1]), truth, 1)  # the whole ladder, every length
            reference = bits[rows, rate.allocate_for_sse(dense, max_sse)].sum()
            first = functools.partial(rate.allocate_for_sse, max_sse=max_sse)
            for name, (coarse, factors, kind) in schemes_list:
                counts = simulate(truth, bits, coarse, factors, first, 1, kind)
                results[name]["psnr"].append(bits[rows, counts].sum() / reference)
        for q in (30, 50, 70, 90):
            slope = slope_for_quality(q)
            ref = rate.allocate_for_slope(rate.RDTable(bits, np.arange(bits.shape[1]), truth, 1), slope)
            reference = truth[rows, ref].sum() + slope * bits[rows, ref].sum()
            first = functools.partial(rate.allocate_for_slope, slope=slope)
            for name, (coarse, factors, kind) in schemes_list:
                counts = simulate(truth, bits, coarse, factors, first, 1, kind)
                objective = truth[rows, counts].sum() + slope * bits[rows, counts].sum()
                results[name]["quality"].append(objective / reference)
    for name, (coarse, factors, _) in schemes():
        p, q = np.array(results[name]["psnr"]), np.array(results[name]["quality"])
        rounds = factors if isinstance(factors[0], tuple) else (factors,)
        decodes = len(rate.coarse_lengths(512, coarse)) + sum(map(len, rounds))
        print(
            f"{name:10s} {decodes:2d} decodes  psnr bits ratio mean {p.mean():.4f} worst {p.max():.4f}   "
            f"quality objective ratio mean {q.mean():.4f} worst {q.max():.4f}"
        )


if __name__ == "__main__":
    main()
