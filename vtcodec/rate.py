"""Rate control: per-tile token counts for a byte budget or a quality target.

Rates are exact ideal code lengths under the model's prior: the digit-context
prior when it has one, else the per-position prior. Tiles are coded independently
of each other and a token's context reads only earlier tokens of its own tile, so
a tile's rate at prefix n is the sum of its first n tokens' costs. Distortions
are measured: the image is decoded at a ladder of prefix lengths (for a byte budget, a
window around the uniform count that fits), with the decoder that the file will be decoded
with, and each tile is compared with the source pixels (uint8, valid pixels only).
Allocation is Lagrangian: each tile takes the n minimizing ``D + lambda * R``; lambda is
bisected to meet the target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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


def window_lengths(n: int, k: int, factors: tuple[float, ...] = WINDOW) -> np.ndarray:
    """0, every token (``k``), and ``factors`` times ``n`` (each at least 1), within 0 … k, sorted."""
    return np.array(sorted({0, k, *(min(k, max(1, round(f * n))) for f in factors)}))


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
    """Per-tile rate (bits) for every prefix 0..K, and measured SSE at the ``lengths`` ladder."""

    bits: np.ndarray  # (tiles, K + 1)
    lengths: np.ndarray  # (L,)
    sse: np.ndarray  # (tiles, L)
    pixels: int  # valid pixels in the image (width * height)

    def sse_interpolated(self) -> np.ndarray:
        """SSE for every prefix 0..K, linear between the measured ladder points."""
        k = self.bits.shape[1] - 1
        grid = np.arange(k + 1)
        return np.stack([np.interp(grid, self.lengths, row) for row in self.sse])


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


def tile_sse(
    pixels: np.ndarray, tokens: TokenImage, decoder: Decoder, lengths: np.ndarray, progress: bool = False
) -> np.ndarray:
    """(tiles, len(lengths)): each tile's SSE against ``pixels`` when every tile keeps n tokens, per n."""
    grid = tokens.grid
    t, h, w = grid.tile, grid.height, grid.width
    reference = pixels.astype(np.int32)
    sse = np.zeros((grid.count, len(lengths)))
    per_pixel = np.zeros((grid.rows * t, grid.cols * t), dtype=np.int64)
    ladder = tqdm(lengths, desc="measuring", unit="length", disable=None if progress else True, leave=False)
    for col, n in enumerate(ladder):
        decoded = decoder.render_padded(tokens.ids, np.full(grid.count, int(n)), grid)
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
    """Fewest-bits ladder counts whose measured total SSE is <= ``max_sse``; None if unreachable."""
    sse, lengths = table.sse, table.lengths
    bits = table.bits[:, lengths]
    rows = np.arange(len(sse))
    if sse.min(axis=1).sum() > max_sse:
        return None
    pick = _lagrangian(sse, bits, lambda c: sse[rows, c].sum() <= max_sse, ok_high=False)
    if sse[rows, pick].sum() > max_sse:  # lambda 0 ties: take the least-SSE choice outright
        pick = np.argmin(sse, axis=1)
    return lengths[pick]
