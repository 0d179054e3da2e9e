"""The learning-rate schedule and the tail-token drop: which prefix lengths a batch keeps."""

from __future__ import annotations

import numpy as np
import torch

from vtcodec.training.config import DecoderTrainConfig, TrainConfig


def tile_lengths(
    batch: int, tiles: int, max_tokens: int, cfg: DecoderTrainConfig, gen: torch.Generator
) -> torch.Tensor:
    """(batch, tiles) kept prefix lengths: per tile, or one per crop with ``shared_length_prob``."""
    own = sample_lengths(batch * tiles, max_tokens, cfg.full_length_prob, gen, cfg.length_dist).view(batch, tiles)
    shared = sample_lengths(batch, max_tokens, cfg.full_length_prob, gen, cfg.length_dist)
    pick_shared = torch.rand(batch, generator=gen) < cfg.shared_length_prob
    lengths = torch.where(pick_shared.unsqueeze(1), shared.unsqueeze(1).expand(batch, tiles), own)
    empty = torch.rand(batch, tiles, generator=gen) < cfg.empty_prob
    return torch.where(empty, torch.zeros_like(lengths), lengths)


def sample_lengths(
    batch: int, max_tokens: int, full_prob: float, gen: torch.Generator, dist: str = "uniform"
) -> torch.Tensor:
    """Kept prefix lengths (tail-token drop): exactly K with ``full_prob``.

    Otherwise ``uniform`` on [1, K]; ``mixed``: half uniform, half log-uniform (more short prefixes);
    ``front``: three quarters uniform on [1, K/2], one quarter uniform on [1, K] (the
    low-rate half of the sequence, where the codec's targets lie, gets most of the weight).
    """
    lengths = torch.randint(1, max_tokens + 1, (batch,), generator=gen)
    if dist == "front":
        front = torch.randint(1, max(max_tokens // 2, 1) + 1, (batch,), generator=gen)
        lengths = torch.where(torch.rand(batch, generator=gen) < 0.75, front, lengths)
    elif dist == "mixed":
        log_uniform = torch.exp(torch.rand(batch, generator=gen) * np.log(max_tokens + 1)).long().clamp(1, max_tokens)
        lengths = torch.where(torch.rand(batch, generator=gen) < 0.5, lengths, log_uniform)
    elif dist != "uniform":
        raise ValueError(f"unknown length distribution {dist!r}")
    full = torch.rand(batch, generator=gen) < full_prob
    return torch.where(full, torch.full_like(lengths, max_tokens), lengths)


def learning_rate(cfg: TrainConfig, step: int, elapsed_s: float) -> float:
    """Linear warm-up, constant, then linear decay to 10% over the last part of the budget.

    The budget is ``max_steps`` when set (so that a resumed run repeats the same
    schedule exactly), else the wall time.
    """
    lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup_steps)
    progress = step / cfg.max_steps if cfg.max_steps else elapsed_s / (cfg.minutes * 60.0)
    start = 1.0 - cfg.decay_fraction
    if progress > start:
        lr *= max(0.1, 1.0 - 0.9 * (progress - start) / cfg.decay_fraction)
    return lr
