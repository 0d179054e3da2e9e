"""Rendering tokens with a decoder network: per tile, or over the whole token grid in windows.

A :class:`Decoder` pairs a network with how much of the image it sees. Context ``tile``
renders every tile alone (zero padding at its edges); context ``grid`` runs the
decoder's layers from ``grid_from`` on over the token maps of all tiles at once
(``ConvTokenizer.render_mosaic``), so it sees across tile borders and leaves no seams.
Large images are decoded in overlapping windows of tiles whose margin covers the
decoder's receptive field (:func:`receptive_radius`), so the result equals a
whole-image decode while memory stays bounded. Which decoders exist and how they are
chosen is ``vtcodec.decoders``; their files are ``vtcodec.decoders.files``.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vtcodec.models import ConvTokenizer, TokenSpace
from vtcodec.models.tokenizer import AttentionBlock, ResBlock, Upsample
from vtcodec.tile_grid import TileGrid
from vtcodec.tiling import TILE_BATCH, place_tiles

CONTEXTS = ("tile", "grid")
WINDOW_TILES = 12  # grid decoders: images of more tiles than this along a side are decoded in windows
PRECISIONS = ("auto", "float32", "bfloat16")
LOW_PRECISION_LAYERS = (nn.Conv2d, nn.Linear)  # the layers that bfloat16 autocast runs in bfloat16


@functools.cache
def native_bf16(device_type: str) -> bool:
    """Whether bfloat16 arithmetic is native on this machine's ``device_type``: CUDA, or a CPU with
    AVX512-BF16 or AMX tiles (elsewhere torch emulates it, slower than float32)."""
    if device_type == "cuda":
        return True
    probes = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return any(probe() for probe in probes if probe is not None)


def decodes_in_bf16(network: TokenSpace, device: torch.device, precision: str = "auto") -> bool:
    """Whether ``network`` decodes under bfloat16 autocast at ``precision`` on ``device``:
    ``"bfloat16"``, or ``"auto"`` for the grid family where bfloat16 runs natively."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision is one of {', '.join(PRECISIONS)}, not {precision!r}")
    measured = isinstance(network, ConvTokenizer)  # the grid family's bfloat16 pixels were measured
    return precision == "bfloat16" or (precision == "auto" and measured and native_bf16(device.type))


def low_precision_names(network: TokenSpace) -> set[str]:
    """The parameters that :func:`store_weights_for` keeps in bfloat16: those of the decoder's
    convolution and linear layers (the fine tokens' input convolution included), not the encoder's."""
    names = set()
    for prefix in ("decoder", "fine_in"):
        part = getattr(network, prefix, None)
        for layer_name, layer in part.named_modules() if part is not None else ():
            if isinstance(layer, LOW_PRECISION_LAYERS):
                names |= {".".join(filter(None, (prefix, layer_name, p))) for p, _ in layer.named_parameters()}
    return names


def store_weights_for(network: TokenSpace, device: torch.device, precision: str) -> None:
    """If ``network`` decodes in bfloat16 (:func:`decodes_in_bf16`), keep its decoder's convolution and
    linear weights in bfloat16 (:func:`low_precision_names`): autocast casts them to just these values at
    every call, so the pixels are the same, with half the memory and no cast per decode (norms stay
    float32, as autocast runs them). The token space's own layers (the encoder) are untouched."""
    if not decodes_in_bf16(network, device, precision):
        return
    low = low_precision_names(network)
    for name, param in network.named_parameters():
        if name in low:
            param.data = param.data.to(torch.bfloat16)


def holds_bf16_weights(network: TokenSpace) -> bool:
    """Whether :func:`store_weights_for` stored ``network``'s weights in bfloat16."""
    return any(p.dtype == torch.bfloat16 for p in network.parameters())


@dataclass(frozen=True)
class Decoder:
    """A decoder for one token space: a network and how much of the image it sees."""

    name: str
    token_space: bytes
    network: TokenSpace  # the grid context needs the grid family (ConvTokenizer.render_mosaic)
    context: str  # "tile": each tile alone; "grid": the whole token grid
    path: Path | None = None
    grid_from: int = 0  # grid context: the first decoder layer that runs over the whole grid
    precision: str = "auto"  # "float32", "bfloat16", or "auto": bfloat16 where it runs natively

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def autocast(self) -> contextlib.AbstractContextManager:
        """The arithmetic of a decode: for the grid family, bfloat16 autocast where it runs natively
        (CUDA; CPUs with AVX512-BF16 or AMX, where it decodes about 1.7x faster with pixels within
        2/255 and the same PSNR to 0.01 dB: ``benchmarks/decode_precision.py``), else float32; other
        token spaces decode in float32 unless asked. Only pixels depend on it; tokens never do (the
        encoder and the entropy coder do not use it)."""
        bf16 = decodes_in_bf16(self.network, self.device, self.precision)
        if not bf16 and holds_bf16_weights(self.network):
            raise ValueError(f"decoder {self.name!r} was loaded for bfloat16; load it with precision='float32'")
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    @property
    def margin_tiles(self) -> int:
        """Tiles of context on each side of a window that make it equal a whole-image decode."""
        return math.ceil(receptive_radius(self.network, self.grid_from) / self.network.tile_size)

    @torch.no_grad()
    def render_padded(
        self, ids: np.ndarray, counts: np.ndarray, grid: TileGrid, window: int = WINDOW_TILES
    ) -> np.ndarray:
        """Tokens (tiles, n) with per-tile ``counts`` -> uint8 (rows * T, cols * T, 3), padding included."""
        t = grid.tile
        canvas = np.empty((grid.rows * t, grid.cols * t, 3), dtype=np.uint8)
        net = self.network
        if self.context == "tile":
            padded = TileGrid(grid.cols * t, grid.rows * t, t)  # the same tiles, nothing cropped
            for start in range(0, grid.count, TILE_BATCH):
                stop = min(start + TILE_BATCH, grid.count)
                with self.autocast():
                    tiles = net.decode(self._ids(ids[start:stop]), self._lengths(counts[start:stop]))
                place_tiles(canvas, padded, start, tiles)
            return canvas
        ids_grid = ids.reshape(grid.rows, grid.cols, -1)
        counts_grid = np.asarray(counts).reshape(grid.rows, grid.cols)
        margin = self.margin_tiles
        for (r0, r1, rc0, rc1), (c0, c1, cc0, cc1) in _windows(grid.rows, grid.cols, window, margin):
            block_ids = ids_grid[rc0:rc1, cc0:cc1].reshape((rc1 - rc0) * (cc1 - cc0), -1)
            block_counts = counts_grid[rc0:rc1, cc0:cc1].reshape(-1)
            with self.autocast():
                image = self._mosaic(block_ids, block_counts, rc1 - rc0, cc1 - cc0)
            core = _to_uint8(image)[0, (r0 - rc0) * t : (r1 - rc0) * t, (c0 - cc0) * t : (c1 - cc0) * t]
            canvas[r0 * t : r1 * t, c0 * t : c1 * t] = core
        return canvas

    def render(self, ids: np.ndarray, counts: np.ndarray, grid: TileGrid, window: int = WINDOW_TILES) -> np.ndarray:
        """Tokens -> uint8 (height, width, 3) of the original size."""
        return self.render_padded(ids, counts, grid, window)[: grid.height, : grid.width]

    def _ids(self, ids: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(ids)).to(self.device)

    def _lengths(self, counts: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(counts, dtype=np.int64)).to(self.device)

    def _mosaic(self, ids: np.ndarray, counts: np.ndarray, rows: int, cols: int) -> torch.Tensor:
        net = self.network
        k = net.max_tokens
        full = torch.zeros(len(ids), k, dtype=torch.int64, device=self.device)
        full[:, : ids.shape[1]] = self._ids(ids[:, :k])
        keep = torch.arange(k, device=self.device) < self._lengths(counts).unsqueeze(1)
        codes = net.quantizer.ids_to_codes(full).to(net.absent.dtype)
        return net.render_mosaic(codes.unsqueeze(0), keep.unsqueeze(0), rows, cols, self.grid_from).clamp(0, 1)


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [0, 1] -> (B, H, W, 3) uint8."""
    return images.float().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def _spans(n: int, window: int, margin: int) -> list[tuple[int, int, int, int]]:
    """(core start, core stop, context start, context stop) along one axis of ``n`` tiles."""
    if n <= window:
        return [(0, n, 0, n)]
    core = max(window - 2 * margin, 1)
    return [(s, min(s + core, n), max(s - margin, 0), min(s + core + margin, n)) for s in range(0, n, core)]


def _windows(rows: int, cols: int, window: int, margin: int) -> Iterator[tuple[tuple[int, ...], tuple[int, ...]]]:
    for row_span in _spans(rows, window, margin):
        for col_span in _spans(cols, window, margin):
            yield row_span, col_span


def receptive_radius(network: ConvTokenizer, grid_from: int = 0) -> int:
    """How far (pixels) past the edge of its tile a tile's tokens can change the output.

    Only the decoder layers from ``grid_from`` on see other tiles. Each of their
    convolutions reaches ``kernel // 2`` features further, one feature being
    ``scale`` pixels at its stage; the decoder starts at the token cells' scale.
    With ``grid_from = 0`` the fine tokens' input convolution reaches as far as
    the first layer does, or less.
    """
    scale, radius = float(network.config.cell_size), 0.0
    for index, layer in enumerate(network.decoder):
        seen = index >= grid_from
        if isinstance(layer, Upsample):
            radius += (layer.conv.kernel_size[0] // 2) * scale * seen
            scale /= 2
        elif isinstance(layer, ResBlock):
            radius += (layer.conv1.kernel_size[0] // 2 + layer.conv2.kernel_size[0] // 2) * scale * seen
        elif isinstance(layer, AttentionBlock):
            if seen:
                raise ValueError("attention sees its whole input: it must run before grid_from, on each tile")
        elif isinstance(layer, nn.Conv2d):
            radius += (layer.kernel_size[0] // 2) * scale * seen
        elif isinstance(layer, nn.PixelShuffle):
            scale /= layer.upscale_factor
        elif not isinstance(layer, nn.SiLU):
            raise ValueError(f"unknown decoder layer {type(layer).__name__}")
    return math.ceil(radius)
