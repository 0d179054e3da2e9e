"""The tokenizer's building blocks: residual and attention blocks, upsampling, and the order of token cells."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ResBlock(nn.Module):
    def __init__(self, channels: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or channels
        self.conv1 = nn.Conv2d(channels, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return x + self.conv2(F.silu(self.conv1(F.silu(x))))
        # Inference: the temporaries are overwritten in place (less memory traffic, the same numbers).
        h = self.conv2(F.silu(self.conv1(F.silu(x)), inplace=True))
        return h.add_(x) if h.dtype == x.dtype else x + h  # autocast: h may be bfloat16 where x is not


class AttentionBlock(nn.Module):
    """Self-attention among the positions of a feature map, then an MLP; both residual.

    Both output projections start at zero, so an added block starts as the identity.
    The decoder runs it on each tile's own grid (before ``grid_from``), so windowed
    decoding stays exact.
    """

    def __init__(self, channels: int, heads: int = 4, mlp_ratio: int = 2) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"{channels} channels do not split into {heads} heads")
        self.heads = heads
        self.norm1 = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        self.norm2 = nn.LayerNorm(channels)
        self.mlp_in = nn.Linear(channels, mlp_ratio * channels)
        self.mlp_out = nn.Linear(mlp_ratio * channels, channels)
        for layer in (self.proj, self.mlp_out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        seq = x.flatten(2).transpose(1, 2)  # (B, h * w, C)
        q, k, v = self.qkv(self.norm1(seq)).view(b, h * w, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, h * w, c)
        seq = seq + self.proj(attended)
        seq = seq + self.mlp_out(F.gelu(self.mlp_in(self.norm2(seq))))
        return seq.transpose(1, 2).reshape(b, c, h, w)


class Upsample(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out * 4, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv(F.silu(x)))


def cell_order(side: int, order: str) -> torch.Tensor:
    """Spatial (raster) index of the cell at each sequence position of one token group."""
    cells = [(y, x) for y in range(side) for x in range(side)]
    if order == "raster":
        keys = [0] * len(cells)
    elif order == "coarse-to-fine":
        # Nested lattices of cells at (1 mod s, 1 mod s) for s = side/2, ..., 2: coarsest first.
        def level(y: int, x: int) -> int:
            stride = max(side // 2, 1)
            while stride > 1 and not (y % stride == 1 and x % stride == 1):
                stride //= 2
            return -stride

        keys = [level(y, x) for y, x in cells]
    else:
        raise ValueError(f"unknown cell order {order!r}")
    ranked = sorted(range(len(cells)), key=lambda i: (keys[i], i))
    return torch.tensor(ranked, dtype=torch.int64, device="cpu")  # a constant, even under the meta device
