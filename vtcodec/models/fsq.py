"""Finite scalar quantization (Mentzer et al., 2023): a codebook-free quantizer.

Each token is a vector of ``len(levels)`` scalars, each bounded and rounded to
one of ``levels[i]`` values. The token id is the mixed-radix number of its digits.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class FSQ(nn.Module):
    """Bound, round (straight-through) and index vectors of ``len(levels)`` dims."""

    def __init__(self, levels: list[int]) -> None:
        super().__init__()
        self.levels_list = list(levels)
        # Constants on the CPU even when the network is declared on the meta device (``.to`` moves them).
        levels_t = torch.tensor(levels, dtype=torch.int64, device="cpu")
        basis = torch.cumprod(torch.tensor([1, *levels[:-1]], dtype=torch.int64, device="cpu"), dim=0)
        self.register_buffer("levels", levels_t, persistent=False)
        self.register_buffer("basis", basis, persistent=False)

    @property
    def dim(self) -> int:
        return len(self.levels_list)

    @property
    def codebook_size(self) -> int:
        return math.prod(self.levels_list)

    def _bound(self, z: torch.Tensor) -> torch.Tensor:
        levels = self.levels.to(z.dtype)
        half = (levels - 1) * (1 + 1e-3) / 2
        offset = torch.where(self.levels % 2 == 0, 0.5, 0.0).to(z.dtype)
        shift = torch.atanh(offset / half)
        return torch.tanh(z + shift) * half - offset

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """The values of ``z`` before rounding, in float32: digit ``d`` is ``round(bound) + levels[d] // 2``."""
        return self._bound(z.float())

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Quantize ``z`` (..., dim) and return (normalized codes in [-1, 1], token ids).

        Always in float32, also under autocast: the rounding decides the tokens.
        """
        z = z.float()
        bounded = self._bound(z)
        rounded = bounded + (torch.round(bounded) - bounded).detach()
        half_width = (self.levels // 2).to(z.dtype)
        ids = self.codes_to_ids(rounded.detach())
        return rounded / half_width, ids

    def codes_to_ids(self, rounded: torch.Tensor) -> torch.Tensor:
        digits = torch.round(rounded).to(torch.int64) + self.levels // 2
        return (digits * self.basis).sum(dim=-1)

    def ids_to_codes(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids (...) to normalized code vectors (..., dim)."""
        digits = (ids.unsqueeze(-1) // self.basis) % self.levels
        half_width = self.levels // 2
        return (digits - half_width).to(torch.float32) / half_width.to(torch.float32)
