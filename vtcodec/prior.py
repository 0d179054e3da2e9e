"""The learned token prior: per-position integer frequency tables.

Row ``j`` of the table is the distribution of the token at position ``j`` of a
tile's sequence. Every row holds positive integers that sum to exactly
``2**FREQ_BITS``, so ``freq / 2**FREQ_BITS`` is exactly representable in float64
and the encoder and decoder hand bit-identical probabilities to the range coder
on every machine, device and thread count.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import constriction
import numpy as np

FREQ_BITS = 20
FREQ_TOTAL = 1 << FREQ_BITS


def quantize_rows(probabilities: np.ndarray, total: int) -> np.ndarray:
    """Integer rows, every entry >= 1, each row summing to ``total`` (largest remainder, ties by index)."""
    symbols = probabilities.shape[1]
    if symbols > total:
        raise ValueError("alphabet larger than the frequency total")
    spare = total - symbols
    share = probabilities / probabilities.sum(axis=1, keepdims=True) * spare
    base = np.floor(share).astype(np.int64)
    left = spare - base.sum(axis=1)
    rank = np.argsort(-(share - base), axis=1, kind="stable")
    bonus = np.zeros_like(base)
    np.put_along_axis(bonus, rank, (np.arange(symbols)[None, :] < left[:, None]).astype(np.int64), axis=1)
    return base + bonus + 1


def quantize_counts(counts: np.ndarray, total: int = FREQ_TOTAL) -> np.ndarray:
    """:func:`quantize_rows` of counts; a row of zeros becomes uniform. Deterministic: ties by symbol index."""
    counts = np.array(counts, dtype=np.float64)
    counts[counts.sum(axis=1) <= 0] = 1.0
    return quantize_rows(counts, total)


@dataclass(frozen=True)
class TokenPrior:
    """Per-position integer frequency tables, shape (max_tokens, codebook_size)."""

    freqs: np.ndarray

    def __post_init__(self) -> None:
        freqs = np.asarray(self.freqs)
        if freqs.ndim != 2 or freqs.min() < 1 or np.any(freqs.sum(axis=1, dtype=np.int64) != FREQ_TOTAL):
            raise ValueError(f"prior rows must be positive integers summing to 2**{FREQ_BITS}")
        # int32 holds every entry (at most 2**FREQ_BITS); probabilities are derived per row when asked,
        # exactly (a power-of-two denominator), so no float64 copy of the table is kept.
        freqs = freqs.astype(np.int32)
        freqs.setflags(write=False)
        object.__setattr__(self, "freqs", freqs)

    @property
    def max_tokens(self) -> int:
        return self.freqs.shape[0]

    @property
    def codebook_size(self) -> int:
        return self.freqs.shape[1]

    def probabilities(self, positions: np.ndarray) -> np.ndarray:
        """Exact float64 probability rows for the given sequence positions."""
        return self.freqs[positions] / FREQ_TOTAL

    @cached_property
    def _models(self) -> list:
        return [constriction.stream.model.Categorical(row / FREQ_TOTAL, perfect=False) for row in self.freqs]

    def model(self, position: int) -> constriction.stream.model.Categorical:
        """The range coder's model for sequence ``position`` (built once, then shared)."""
        return self._models[position]

    def bits(self, tokens: np.ndarray, positions: np.ndarray) -> float:
        """Ideal code length in bits of ``tokens`` at ``positions`` under this prior."""
        return float(-np.log2(self.freqs[positions, tokens] / FREQ_TOTAL).sum())

    @classmethod
    def fit(cls, tokens: np.ndarray, codebook_size: int, backoff: float = 64.0) -> TokenPrior:
        """Fit from a (num_tiles, max_tokens) array of token ids.

        Each position's counts are smoothed towards the distribution of all
        positions together, with ``backoff`` pseudo-counts (plus 0.5 spread
        uniformly, so that no symbol is impossible).
        """
        num_positions = tokens.shape[1]
        overall = np.bincount(tokens.reshape(-1), minlength=codebook_size).astype(np.float64)
        overall = (overall + 0.5) / (overall.sum() + 0.5 * codebook_size)
        counts = np.empty((num_positions, codebook_size), dtype=np.float64)
        for j in range(num_positions):
            counts[j] = np.bincount(tokens[:, j], minlength=codebook_size) + backoff * overall
        return cls(quantize_counts(counts))

    @classmethod
    def fit_best(
        cls,
        tokens: np.ndarray,
        held_out: np.ndarray,
        codebook_size: int,
        backoffs: tuple[float, ...] = (4, 16, 64, 256),
    ) -> tuple[TokenPrior, float]:
        """Fit with the ``backoff`` that codes ``held_out`` tokens in the fewest bits; returns (prior, backoff)."""
        positions = np.broadcast_to(np.arange(held_out.shape[1]), held_out.shape)
        scored = []
        for backoff in backoffs:
            prior = cls.fit(tokens, codebook_size, backoff)
            scored.append((prior.bits(held_out, positions), backoff, prior))
        _, backoff, prior = min(scored, key=lambda item: item[0])
        return prior, backoff
