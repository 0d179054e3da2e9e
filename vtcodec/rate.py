"""Rate control: per-tile token counts for a byte budget or a quality target.

Rates are exact ideal code lengths under the model's prior: the digit-context
prior when it has one, else the per-position prior. Tiles are coded independently
of each other and a token's context reads only earlier tokens of its own tile, so
a tile's rate at prefix n is the sum of its first n tokens' costs. Distortions
are measured: the image is decoded at a few prefix lengths, with the decoder that the file
will be decoded with, and each tile is compared with the source pixels (uint8, valid pixels
only). Which lengths: for a byte budget, a window around the uniform count that fits
(:func:`window_lengths`; that count needs no decode); for a PSNR or a quality target, a coarse
ladder (:data:`COARSE`), then each tile's own lengths around a first allocation
(:func:`refine`). Allocation is Lagrangian: each tile takes the n minimizing
``D + lambda * R``; lambda is bisected to meet the target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

if TYPE_CHECKING:
    from vtcodec.decoders.rendering import Decoder
    from vtcodec.pipeline import TokenImage
    from vtcodec.zoo import LoadedModel

LADDER = (0, 1, 2, 3, 4, 6, 8, 12, 16, 20, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448)
# A byte budget measures only around the uniform count n that fits it: these multiples of n, 0 and every
# token (``benchmarks/ladder_window.py``: 10 decodes instead of 28; at equal bytes 0.02-0.05 dB below the
# whole ladder on average on Kodak and held-out photos, 0.11 dB on the worst image).
WINDOW = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
# A PSNR or a quality target has no such anchor: it measures a coarse ladder (0, every token and
# these), allocates, then, per round, measures each tile at these multiples of its own count and
# allocates again: 13 decodes (``benchmarks/probes/refine_schemes.py`` chose them offline,
# ``benchmarks/target_refine.py`` measures them against the whole ladder).
COARSE = (4, 16, 64, 128, 256)
AROUND = ((0.6, 0.8, 1.25, 1.6), (0.9, 1.1))


def window_lengths(n: int, k: int, factors: tuple[float, ...] = WINDOW) -> np.ndarray:
    """0, every token (``k``), and ``factors`` times ``n`` (each at least 1), within 0 … k, sorted."""
    return np.array(sorted({0, k, *(min(k, max(1, round(f * n))) for f in factors)}))


def coarse_lengths(k: int, coarse: tuple[int, ...] = COARSE) -> np.ndarray:
    """0, every token (``k``) and the ``coarse`` lengths below ``k``, sorted."""
    return np.array(sorted({0, k, *(n for n in coarse if n < k)}))


def sse_for_psnr(pixels: int, target_db: float) -> float:
    """The total squared error (RGB, summed over channels) of ``pixels`` pixels at ``target_db`` PSNR."""
    return 3 * pixels * 255.0**2 / 10 ** (target_db / 10)


def largest_passing(lo: int, hi: int, ok: Callable[[int], bool]) -> int | None:
    """The largest integer ``n`` in ``lo … hi`` with ``ok(n)``, by bisection; None if ``ok(lo)`` fails.

    ``ok`` must hold up to some ``n`` and fail above it (a file that grows with ``n`` under a budget).
    """
    if not ok(lo):
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass(frozen=True)
class RDTable:
    """Per-tile rate (bits) for every prefix 0..K, and SSE measured at ``lengths``.

    ``lengths`` is one ladder for all tiles (L,) or each tile's own (tiles, L). Each row rises from 0
    to K; a row may repeat its last length (with the same SSE) to pad to the others' width. Between
    measured lengths SSE is read off the chord, or with ``power_law`` off a power law (linear in log
    SSE against log(n + 1)), which follows a tile's curve closer across wide gaps (:func:`coarse_to_fine`).
    """

    bits: np.ndarray  # (tiles, K + 1)
    lengths: np.ndarray  # (L,) or (tiles, L)
    sse: np.ndarray  # (tiles, L)
    pixels: int  # valid pixels in the image (width * height)
    power_law: bool = False

    def tile_lengths(self) -> np.ndarray:
        """(tiles, L): the lengths at which each tile was measured."""
        return np.broadcast_to(self.lengths, self.sse.shape)

    def sse_interpolated(self) -> np.ndarray:
        """SSE for every prefix 0..K, between each tile's measured lengths as ``power_law`` says."""
        grid = np.arange(self.bits.shape[1])
        if not self.power_law:
            return np.stack([np.interp(grid, xs, ys) for xs, ys in zip(self.tile_lengths(), self.sse, strict=True)])
        rows = zip(np.log1p(self.tile_lengths()), np.log(np.maximum(self.sse, 1e-3)), strict=True)
        return np.exp(np.stack([np.interp(np.log1p(grid), xs, ys) for xs, ys in rows]))


def prefix_bits(tokens: TokenImage, model: LoadedModel) -> np.ndarray:
    """(tiles, K + 1) ideal code length of each tile's first n tokens."""
    if model.context is not None:
        costs = model.context.token_bits(tokens.ids)
    else:
        positions = np.arange(model.config.max_tokens)
        costs = -np.log2(model.prior.probabilities(positions)[positions[None, :], tokens.ids])
    return np.concatenate([np.zeros((len(costs), 1)), np.cumsum(costs, axis=1)], axis=1)


def measure(
    pixels: np.ndarray,
    tokens: TokenImage,
    model: LoadedModel,
    decoder: Decoder,
    progress: bool = False,
    lengths: np.ndarray | None = None,
) -> RDTable:
    """Decode the image at every ladder length (all tiles alike) and measure each tile's SSE against ``pixels``.

    ``decoder`` is the one the file will be decoded with. A grid decoder sees the
    neighbours at the same length; the allocation then treats each tile's SSE as its own.
    ``progress`` shows a bar on stderr when it is a terminal. ``lengths`` measures only these
    (sorted, from 0 up to every token; SSE in between is interpolated) instead of :data:`LADDER`.
    """
    k = model.config.max_tokens
    if lengths is None:
        lengths = np.array(sorted({min(n, k) for n in LADDER} | {k}))  # always up to every token
    elif lengths[0] != 0 or lengths[-1] != k or np.any(np.diff(lengths) <= 0):
        raise ValueError(f"lengths must rise from 0 to {k}")
    sse = tile_sse(pixels, tokens, decoder, lengths, progress)
    return RDTable(prefix_bits(tokens, model), lengths, sse, tokens.grid.width * tokens.grid.height)


def refine(
    table: RDTable,
    pixels: np.ndarray,
    tokens: TokenImage,
    decoder: Decoder,
    counts: np.ndarray,
    progress: bool = False,
    factors: tuple[float, ...] = AROUND[0],
) -> RDTable:
    """``table`` with each tile also measured at ``factors`` times its own count in ``counts`` (at least 1).

    One decode per factor, every tile at its own length: its neighbours sit near their own
    allocation, as they will in the file. Where a tile was measured twice at a length, the new
    measurement is kept.
    """
    k = table.bits.shape[1] - 1
    around = np.stack([np.clip(np.round(f * counts), 1, k) for f in factors], axis=1).astype(np.int64)
    sse = tile_sse(pixels, tokens, decoder, around, progress)
    rows = []
    for old_n, old_sse, new_n, new_sse in zip(table.tile_lengths(), table.sse, around, sse, strict=True):
        points = dict(zip(old_n.tolist(), old_sse.tolist(), strict=True))
        points.update(zip(new_n.tolist(), new_sse.tolist(), strict=True))
        rows.append(sorted(points.items()))
    width = max(len(row) for row in rows)
    padded = np.array([row + row[-1:] * (width - len(row)) for row in rows])  # (tiles, width, 2)
    return replace(table, lengths=padded[:, :, 0].astype(np.int64), sse=padded[:, :, 1])


def coarse_to_fine(
    pixels: np.ndarray,
    tokens: TokenImage,
    model: LoadedModel,
    decoder: Decoder,
    allocate: Callable[[RDTable], np.ndarray | None],
    progress: bool = False,
    coarse: tuple[int, ...] = COARSE,
    rounds: tuple[tuple[float, ...], ...] = AROUND,
) -> RDTable:
    """Measure :func:`coarse_lengths`; then per round, allocate with ``allocate`` (None: every token)
    and :func:`refine` around it at that round's factors. The table reads SSE off a power law between
    its lengths: on 12 held-out photos that gave 0.4 % fewer bits than chords for a PSNR target
    (``benchmarks/probes/refine_schemes.py``); a byte budget's dense window keeps chords, which lose
    0.01 dB less on Kodak (``benchmarks/ladder_window.py``)."""
    k = model.config.max_tokens
    table = measure(pixels, tokens, model, decoder, progress, coarse_lengths(k, coarse))
    table = replace(table, power_law=True)
    for factors in rounds:
        counts = allocate(table)
        if counts is None:
            counts = np.full(tokens.grid.count, k)
        table = refine(table, pixels, tokens, decoder, counts, progress, factors)
    return table


def tile_sse(
    pixels: np.ndarray, tokens: TokenImage, decoder: Decoder, lengths: np.ndarray, progress: bool = False
) -> np.ndarray:
    """(tiles, L): each tile's SSE against ``pixels`` at each of ``lengths``.

    ``lengths`` (L,) keeps the same count in every tile per decode; (tiles, L) gives each tile its own.
    """
    grid = tokens.grid
    t, h, w = grid.tile, grid.height, grid.width
    reference = pixels.astype(np.int32)
    columns = np.broadcast_to(lengths, (grid.count, np.shape(lengths)[-1])).T  # (L, tiles)
    sse = np.zeros((grid.count, len(columns)))
    per_pixel = np.zeros((grid.rows * t, grid.cols * t), dtype=np.int64)
    ladder = tqdm(columns, desc="measuring", unit="length", disable=None if progress else True, leave=False)
    for col, counts in enumerate(ladder):
        decoded = decoder.render_padded(tokens.ids, np.array(counts, dtype=np.int64), grid)  # a writable copy
        per_pixel[:h, :w] = ((decoded[:h, :w].astype(np.int32) - reference) ** 2).sum(axis=2)
        sse[:, col] = per_pixel.reshape(grid.rows, t, grid.cols, t).sum(axis=(1, 3)).reshape(-1)
    return sse


def _choose(cost_d: np.ndarray, bits: np.ndarray, lam: float) -> np.ndarray:
    return np.argmin(cost_d + lam * bits, axis=1)


def _lagrangian(sse: np.ndarray, bits: np.ndarray, ok: Callable[[np.ndarray], bool], ok_high: bool) -> np.ndarray:
    """Per-tile choices at the lambda closest to the boundary of ``ok``, on its ``ok`` side.

    ``ok`` is monotone in lambda: true above the boundary if ``ok_high``, else below.
    """
    lo, hi = 0.0, 1.0
    while ok(_choose(sse, bits, hi)) != ok_high and hi < 1e18:
        hi *= 4
    for _ in range(60):
        mid = (lo + hi) / 2
        if ok(_choose(sse, bits, mid)) == ok_high:
            hi = mid
        else:
            lo = mid
    return _choose(sse, bits, hi if ok_high else lo)


def allocate_for_bits(table: RDTable, budget_bits: float) -> np.ndarray:
    """Token counts minimizing total (interpolated) SSE with total ideal bits <= ``budget_bits``."""
    sse = table.sse_interpolated()
    bits = table.bits
    rows = np.arange(len(bits))
    if bits[:, 0].sum() > budget_bits:
        return np.zeros(len(bits), dtype=np.int64)
    counts = _lagrangian(sse, bits, lambda c: bits[rows, c].sum() <= budget_bits, ok_high=True)
    return _fill(counts, bits, sse, budget_bits)


def _fill(counts: np.ndarray, bits: np.ndarray, sse: np.ndarray, budget_bits: float) -> np.ndarray:
    """Greedily add single tokens (best SSE drop per bit first) while the budget allows."""
    counts = counts.copy()
    k = bits.shape[1] - 1
    rows = np.arange(len(counts))
    spent = bits[rows, counts].sum()
    while True:
        open_rows = rows[counts < k]
        if not len(open_rows):
            return counts
        nxt = counts[open_rows] + 1
        extra = bits[open_rows, nxt] - bits[open_rows, counts[open_rows]]
        gain = (sse[open_rows, counts[open_rows]] - sse[open_rows, nxt]) / np.maximum(extra, 1e-9)
        fits = spent + extra <= budget_bits
        if not fits.any():
            return counts
        pick = np.argmax(np.where(fits, gain, -np.inf))
        counts[open_rows[pick]] += 1
        spent += extra[pick]


def allocate_for_slope(table: RDTable, slope: float) -> np.ndarray:
    """Token counts where each tile stops: the prefix minimizing ``SSE + slope * bits`` (a fixed RD slope).

    ``slope`` is squared error (summed over channels) per bit; a smaller slope keeps more tokens.
    """
    return _choose(table.sse_interpolated(), table.bits, slope)


def allocate_for_sse(table: RDTable, max_sse: float) -> np.ndarray | None:
    """Fewest-bits counts whose total (interpolated) SSE is <= ``max_sse``; None if unreachable.

    Between measured lengths SSE is an estimate: the caller checks the result by decoding it.
    """
    sse, bits = table.sse_interpolated(), table.bits
    rows = np.arange(len(sse))
    if sse.min(axis=1).sum() > max_sse:
        return None
    pick = _lagrangian(sse, bits, lambda c: sse[rows, c].sum() <= max_sse, ok_high=False)
    if sse[rows, pick].sum() > max_sse:  # lambda 0 ties: take the least-SSE choice outright
        pick = np.argmin(sse, axis=1)
    return pick
