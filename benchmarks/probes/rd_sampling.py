"""How few decodes can a byte budget's rate-distortion table take? A probe for issue 37.

Rate control (``vtcodec.rate``) decodes the image at every length of a 28-point ladder. This probe
measures each tile's SSE at (nearly) every prefix length instead -- 0 … 128 one by one, then every
2nd to 256 and every 8th to 512, 225 decodes an image -- and uses that as the truth. Every strategy
then allocates ideal bits (``rate.allocate_for_bits``, the budget as ``bpp * pixels``) from the SSE
it would have measured, and is scored by the true SSE of its allocation, in dB against today's ladder:

- thinner fixed ladders, interpolated linearly or in log-log;
- windows around the uniform count n that fits the budget (which needs no network);
- adaptive per-tile probing: a decode can give every tile its own length, so each round measures
  every tile near its current choice;
- how exact the SSE must be: today's ladder with its curves disturbed by a per-tile scale, a
  per-tile tilt (in log length) or independent noise per point.

    python benchmarks/probes/rd_sampling.py --images ../shared/data/train/bsds500/train --limit 5 \\
        --cache /tmp/rd-dense.npy
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import vtcodec
from vtcodec import rate
from vtcodec.decoders import load_decoder

BPPS = (0.02, 0.04, 0.08)


def dense_lengths(k: int) -> np.ndarray:
    every = set(range(0, min(k, 128) + 1)) | set(range(130, min(k, 256) + 1, 2))
    return np.array(sorted(every | {*range(264, k, 8), k}))


def measure_dense(images: Path, limit: int, cache: Path | None) -> dict[str, dict]:
    if cache is not None and cache.exists():
        return np.load(cache, allow_pickle=True).item()
    model = vtcodec.load_model()
    decoder = load_decoder(model)
    lengths = dense_lengths(model.config.max_tokens)
    files = sorted(p for p in images.iterdir() if p.suffix.lower() in (".png", ".jpg"))[:limit]
    tables = {}
    for path in files:
        pixels = np.asarray(Image.open(path).convert("RGB"))
        tokens = vtcodec.tokenize(pixels, model)
        start = time.perf_counter()
        table = rate.measure(pixels, tokens, model, decoder, lengths=lengths)
        tables[path.name] = {"bits": table.bits, "lengths": table.lengths, "sse": table.sse, "pixels": table.pixels}
        print(f"{path.name}: {len(lengths)} decodes, {time.perf_counter() - start:.0f} s", flush=True)
    if cache is not None:
        np.save(cache, tables, allow_pickle=True)
    return tables


def interpolate(truth: np.ndarray, points: list[np.ndarray], log: bool) -> np.ndarray:
    """Every prefix's SSE from each tile's SSE at its ``points``, linear or in log-log."""
    k = truth.shape[1] - 1
    grid = np.arange(k + 1)
    if not log:
        return np.stack([np.interp(grid, p, row[p]) for row, p in zip(truth, points, strict=True)])
    x = np.log1p(grid)
    pairs = zip(truth, points, strict=True)
    return np.stack([np.exp(np.interp(x, np.log1p(p), np.log(np.maximum(row[p], 1.0)))) for row, p in pairs])


def allocate(sse: np.ndarray, bits: np.ndarray, budget: float) -> np.ndarray:
    return rate.allocate_for_bits(rate.RDTable(bits, np.arange(bits.shape[1]), sse, 1), budget)


def around(n: int, k: int, factors: tuple[float, ...]) -> np.ndarray:
    return np.array(sorted({0, k, *(min(k, max(1, round(f * n))) for f in factors)}))


Strategy = Callable[[np.ndarray, np.ndarray, float, int], tuple[np.ndarray, int]]


def fixed(points: Callable[[int, int], np.ndarray], log: bool) -> Strategy:
    def run(truth: np.ndarray, bits: np.ndarray, budget: float, n: int) -> tuple[np.ndarray, int]:
        p = points(n, truth.shape[1] - 1)
        return allocate(interpolate(truth, [p] * len(truth), log), bits, budget), len(p)

    return run


def adaptive(start: tuple[float, ...], rounds: int, spread: tuple[float, ...], log: bool) -> Strategy:
    def run(truth: np.ndarray, bits: np.ndarray, budget: float, n: int) -> tuple[np.ndarray, int]:
        k = truth.shape[1] - 1
        points = [set(around(n, k, start).tolist()) for _ in truth]
        decodes = len(points[0])
        for _ in range(rounds):
            counts = allocate(interpolate(truth, [np.array(sorted(p)) for p in points], log), bits, budget)
            for f in spread:
                for p, c in zip(points, counts, strict=True):
                    p.add(int(min(k, round(c * f))))
                decodes += 1
        return allocate(interpolate(truth, [np.array(sorted(p)) for p in points], log), bits, budget), decodes

    return run


def disturbed(kind: str, sigma: float, ladder: np.ndarray) -> Strategy:
    rng = np.random.default_rng(0)

    def run(truth: np.ndarray, bits: np.ndarray, budget: float, n: int) -> tuple[np.ndarray, int]:
        x = np.log1p(ladder)
        x = (x - x.mean()) / x.std()
        shape = (len(truth), 1) if kind != "noise" else (len(truth), len(ladder))
        error = rng.normal(0.0, sigma, shape) * (x if kind == "tilt" else 1.0)
        measured = truth[:, ladder] * np.exp(error)
        grid = np.arange(truth.shape[1])
        return allocate(np.stack([np.interp(grid, ladder, row) for row in measured]), bits, budget), len(ladder)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=5)
    parser.add_argument("--cache", type=Path, help="Keep the dense tables here (and reuse them).")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tables = measure_dense(args.images, args.limit, args.cache)
    k = next(iter(tables.values()))["bits"].shape[1] - 1
    ladder = np.array(sorted({min(n, k) for n in rate.LADDER} | {k}))
    window = (0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4)
    strategies: dict[str, Strategy] = {
        "today: 28-point ladder, linear": fixed(lambda n, k: ladder, False),
        "28-point ladder, log-log": fixed(lambda n, k: ladder, True),
        "16-point ladder, log-log": fixed(
            lambda n, k: np.array([0, 1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, k]), True
        ),
        "10-point ladder, log-log": fixed(lambda n, k: np.array([0, 2, 8, 16, 32, 64, 96, 128, 256, k]), True),
        "window 0.25n … 4n, linear": fixed(lambda n, k: around(n, k, window), False),
        "window 0.25n … 4n, log-log": fixed(lambda n, k: around(n, k, window), True),
        "per tile: n, then 2 rounds at 0.8c and 1.25c": adaptive((1,), 2, (0.8, 1.25), True),
        "per tile: n/3, n, 3n, then 0.8c and 1.25c": adaptive((1 / 3, 1, 3), 1, (0.8, 1.25), True),
    }
    for kind in ("scale", "tilt", "noise"):
        for sigma in (0.05, 0.1):
            strategies[f"today's ladder, {kind} error {sigma:.0%}"] = disturbed(kind, sigma, ladder)
    scores = {name: {bpp: [] for bpp in BPPS} for name in strategies}
    decodes: dict[str, list[int]] = {name: [] for name in strategies}
    for table in tables.values():
        truth = np.stack([np.interp(np.arange(k + 1), table["lengths"], row) for row in table["sse"]])
        rows = np.arange(len(truth))
        for bpp in BPPS:
            budget = bpp * table["pixels"]
            n = max(m for m in range(k + 1) if table["bits"][:, m].sum() <= budget)
            for name, strategy in strategies.items():
                counts, used = strategy(truth, table["bits"], budget, n)
                decodes[name].append(used)
                scores[name][bpp].append(10 * np.log10(3 * 255.0**2 * table["pixels"] / truth[rows, counts].sum()))
    today = scores["today: 28-point ladder, linear"]
    print(f"\n{len(tables)} images; PSNR of each allocation against today's, mean (worst image)\n")
    print("| strategy | decodes | " + " | ".join(f"{bpp} bpp" for bpp in BPPS) + " |")
    print("|---|---|" + "---|" * len(BPPS))
    for name in strategies:
        cells = [np.array(scores[name][bpp]) - np.array(today[bpp]) for bpp in BPPS]
        row = " | ".join(f"{d.mean():+.3f} ({d.min():+.3f})" for d in cells)
        print(f"| {name} | {np.mean(decodes[name]):.1f} | {row} |")


if __name__ == "__main__":
    main()
