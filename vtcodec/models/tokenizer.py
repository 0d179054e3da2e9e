"""ConvTokenizer: a conv encoder/decoder around an ordered sequence of K FSQ tokens per tile.

Two token layouts (``TokenizerConfig.layout``):

- ``grid`` (default, shipped): the encoder downsamples a T x T tile to a grid of
  cells of ``cell_size`` pixels (32 or 16) with G = K / cells token groups each;
  token ``g * cells + p`` is group ``g`` of the ``p``-th cell in ``cell_order``
  (``raster``, or ``coarse-to-fine``: a sparse lattice of cells first, so that a
  prefix shorter than one group still spreads over the whole tile). Nested dropout
  over this flattened order makes early groups coarse and later groups detail,
  and any prefix still decodes.

  With ``fine_groups`` > 0 (32-pixel cells only) the sequence goes on, after the
  coarse groups, with ``fine_groups`` groups on the (T/16) x (T/16) grid of 16-pixel
  cells (each group in coarse-to-fine cell order). They are read from the encoder's
  T/16 features and added to the decoder's first T/16 features through a
  zero-initialized convolution, so a model that grows fine groups starts out
  exactly as the coarse model it was warm-started from.
- ``global``: a linear readout from the (T/16)^2 feature grid to K tokens, each
  seeing the whole tile (TiTok-like). On this CPU it collapsed (the decoder ignored
  its tokens); kept for the probes in ``benchmarks/``.

Every residual block's last convolution starts at zero, so a block added to a
trained network (``encoder_blocks`` / ``decoder_blocks`` above ``blocks_per_stage``)
starts as the identity: ``vtcodec train --init`` grows depth without changing the output.
The decoder alone can also grow (``DECODER_ARCHITECTURE``: blocks per stage, the inner
width of its residual blocks, self-attention over each tile's 1/16-scale grid), function-
preservingly with ``vtcodec.models.growth.grow_decoder``; decoder files record these keys.
``decoder_channels`` gives the decoder widths of its own (a cheaper decoder for the same
tokens); a decoder of other widths is trained afresh, not grown.

Tokens past the kept prefix are replaced by learned "absent" vectors, so the
decoder knows how many it has. Training keeps a random prefix per sample
(tail-token drop); see ``vtcodec/training/`` and the model card.
"""

from __future__ import annotations

import torch
from torch import nn

from vtcodec.models.blocks import AttentionBlock, ResBlock, Upsample, cell_order
from vtcodec.models.config import DECODER_ARCHITECTURE, TokenizerConfig
from vtcodec.models.fsq import FSQ

__all__ = ["DECODER_ARCHITECTURE", "AttentionBlock", "ConvTokenizer", "ResBlock", "TokenizerConfig", "Upsample"]


class ConvTokenizer(nn.Module):
    """Tile <-> ordered sequence of up to ``max_tokens`` discrete tokens."""

    def __init__(self, config: TokenizerConfig) -> None:
        super().__init__()
        self.config = config
        c, w = config.channels, config.decoder_widths()  # the encoder's widths, the decoder's
        if config.tile_size % 16:
            raise ValueError("tile_size must be a multiple of 16")
        self.grid = config.tile_size // 16
        self.quantizer = FSQ(list(config.fsq_levels))
        k, d = config.max_tokens, self.quantizer.dim
        grid_dim = config.grid_channels * self.grid * self.grid

        enc: list[nn.Module] = [nn.Conv2d(3, c[0], 4, stride=2, padding=1)]
        for i in range(len(c)):
            enc += [ResBlock(c[i]) for _ in range(config.stage_blocks("encoder"))]
            if i + 1 < len(c):
                enc.append(nn.Conv2d(c[i], c[i + 1], 4, stride=2, padding=1))
        self.absent = nn.Parameter(torch.zeros(k, d))
        if config.layout == "global":
            enc += [nn.SiLU(), nn.Conv2d(c[-1], config.grid_channels, 1)]
            self.readout: nn.Module = nn.Linear(grid_dim, k * d)
            self.writein: nn.Module = nn.Linear(k * d, grid_dim)
            dec: list[nn.Module] = [nn.Conv2d(config.grid_channels, w[-1], 1)]
        elif config.layout == "grid":
            if config.cell_size not in (16, 32) or config.tile_size % config.cell_size:
                raise ValueError("cell_size must be 16 or 32 and divide tile_size")
            self.side = config.tile_size // config.cell_size
            cells = self.side**2
            self.fine_side = config.tile_size // 16
            self.fine_groups = config.fine_groups
            self.fine_tokens = self.fine_groups * self.fine_side**2
            if self.fine_groups and config.cell_size != 32:
                raise ValueError("fine_groups needs cell_size 32")
            coarse_tokens = k - self.fine_tokens
            if coarse_tokens <= 0 or coarse_tokens % cells:
                raise ValueError(f"max_tokens minus the fine tokens must be a positive multiple of {cells}")
            self.groups = coarse_tokens // cells
            order = cell_order(self.side, config.cell_order)
            self.register_buffer("order", order, persistent=False)
            self.register_buffer("inverse_order", torch.argsort(order), persistent=False)
            if self.fine_groups:
                fine_order = cell_order(self.fine_side, "coarse-to-fine")
                self.register_buffer("fine_order", fine_order, persistent=False)
                self.register_buffer("fine_inverse_order", torch.argsort(fine_order), persistent=False)
                self.fine_head = nn.Conv2d(c[-1], self.fine_groups * d, 3, padding=1)
                self.fine_in = nn.Conv2d(self.fine_groups * d, w[-1], 3, padding=1)
                nn.init.zeros_(self.fine_in.weight)
                nn.init.zeros_(self.fine_in.bias)
            if config.cell_size == 32:
                enc += [nn.SiLU(), nn.Conv2d(c[-1], self.groups * d, 4, stride=2, padding=1)]
                dec = [Upsample(self.groups * d, w[-1])]
            else:
                enc += [nn.SiLU(), nn.Conv2d(c[-1], self.groups * d, 3, padding=1)]
                dec = [nn.Conv2d(self.groups * d, w[-1], 3, padding=1)]
            self.readout = nn.Identity()
            self.writein = nn.Identity()
        else:
            raise ValueError(f"unknown token layout {config.layout!r}")
        self.encoder = nn.Sequential(*enc)
        blocks, hidden = config.decoder_stage_blocks(), config.decoder_stage_hidden()
        for stage, i in enumerate(reversed(range(len(w)))):
            dec += [ResBlock(w[i], hidden[stage]) for _ in range(blocks[stage])]
            if stage == 0:
                dec += [AttentionBlock(w[i]) for _ in range(config.decoder_attention)]
            if i > 0:
                dec.append(Upsample(w[i], w[i - 1]))
        dec += [nn.SiLU(), nn.Conv2d(w[0], 3 * 4, 3, padding=1), nn.PixelShuffle(2)]
        self.decoder = nn.Sequential(*dec)

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    @property
    def max_tokens(self) -> int:
        return self.config.max_tokens

    @property
    def tile_size(self) -> int:
        return self.config.tile_size

    @property
    def any_prefix(self) -> bool:
        """Trained with nested dropout: every prefix of a tile's tokens decodes."""
        return True

    def _latent(self, tiles: torch.Tensor) -> torch.Tensor:
        """tiles (B, 3, T, T) -> unquantized token vectors (B, K, D) in sequence order."""
        b, k, d = tiles.shape[0], self.config.max_tokens, self.quantizer.dim
        if self.config.layout == "global":
            features = self.encoder(tiles * 2 - 1)
            return self.readout(features.flatten(1)).view(b, k, d)
        # grid: token (group g, p-th cell in the cell order) sits at sequence index g * cells + p.
        hidden = self.encoder[:-1](tiles * 2 - 1)
        features = self.encoder[-1](hidden)
        cells = features.view(b, self.groups, d, -1)[..., self.order]
        coarse = cells.transpose(2, 3).reshape(b, -1, d)
        if not self.fine_groups:
            return coarse
        fine = self.fine_head(hidden).view(b, self.fine_groups, d, -1)[..., self.fine_order]
        return torch.cat([coarse, fine.transpose(2, 3).reshape(b, -1, d)], dim=1)

    def _render(self, codes: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """codes (B, K, D); keep (B, K) bool -> tiles (B, 3, T, T) in about [0, 1], each tile alone."""
        if self.config.layout == "global":
            codes = torch.where(keep.unsqueeze(-1), codes, self.absent.to(codes.dtype))
            grid = self.writein(codes.flatten(1)).view(codes.shape[0], self.config.grid_channels, self.grid, self.grid)
            return self.decoder(grid) * 0.5 + 0.5
        return self.render_mosaic(codes.unsqueeze(1), keep.unsqueeze(1), 1, 1)

    def render_mosaic(
        self, codes: torch.Tensor, keep: torch.Tensor, rows: int, cols: int, grid_from: int = 0
    ) -> torch.Tensor:
        """Decode ``rows x cols`` tiles as one picture, so that the decoder sees across tile borders.

        codes (B, rows * cols, K, D) in tile raster order; keep (B, rows * cols, K) bool
        -> (B, 3, rows * T, cols * T) in about [0, 1]. Grid layout only. Decoder layers
        from index ``grid_from`` on run over the mosaic of all tiles' feature maps; the
        layers before it (and the fine tokens' input convolution when ``grid_from`` > 0)
        run on each tile alone, with zero padding at its edges as the tiled decoder was
        trained. ``grid_from = 0`` lays the token maps themselves side by side. With
        ``rows = cols = 1`` it is the per-tile decoder.
        """
        if self.config.layout != "grid":
            raise ValueError("mosaic decoding needs the grid layout")
        codes = torch.where(keep.unsqueeze(-1), codes, self.absent.to(codes.dtype))
        b, tiles, d = codes.shape[0], rows * cols, self.quantizer.dim
        side, coarse_tokens = self.side, self.groups * self.side**2

        def cell_maps(tokens: torch.Tensor, groups: int, cell_side: int, inverse: torch.Tensor) -> torch.Tensor:
            # (B, tiles, groups * cells, D) in sequence order -> (B * tiles, groups * D, side, side)
            maps = tokens.reshape(b * tiles, groups, cell_side * cell_side, d).transpose(2, 3)[..., inverse]
            return maps.reshape(b * tiles, groups * d, cell_side, cell_side)

        def mosaic(maps: torch.Tensor) -> torch.Tensor:
            # (B * tiles, C, h, w) -> (B, C, rows * h, cols * w)
            c, h, w = maps.shape[1:]
            maps = maps.reshape(b, rows, cols, c, h, w).permute(0, 3, 1, 4, 2, 5)
            return maps.reshape(b, c, rows * h, cols * w)

        coarse = cell_maps(codes[:, :, :coarse_tokens], self.groups, side, self.inverse_order)
        fine = None
        if self.fine_groups:
            fine = cell_maps(codes[:, :, coarse_tokens:], self.fine_groups, self.fine_side, self.fine_inverse_order)
        if grid_from == 0:
            coarse, fine = mosaic(coarse), (mosaic(fine) if fine is not None else None)
        hidden = self.decoder[0](coarse)
        if fine is not None:
            hidden = hidden + self.fine_in(fine)
        if grid_from > 0:
            hidden = mosaic(self.decoder[1:grid_from](hidden))
            return self.decoder[grid_from:](hidden) * 0.5 + 0.5
        return self.decoder[1:](hidden) * 0.5 + 0.5

    def forward(self, tiles: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Training pass: reconstruct each tile from its first ``lengths[b]`` tokens."""
        codes, _ = self.quantizer(self._latent(tiles))
        positions = torch.arange(self.config.max_tokens, device=tiles.device)
        keep = positions.unsqueeze(0) < lengths.unsqueeze(1)
        return self._render(codes, keep)

    @torch.no_grad()
    def encode(self, tiles: torch.Tensor) -> torch.Tensor:
        """tiles (B, 3, T, T) float in [0, 1] -> token ids (B, K) int64."""
        _, ids = self.quantizer(self._latent(tiles))
        return ids

    @torch.no_grad()
    def decode(self, ids: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Token ids (B, n) with n <= K -> tiles (B, 3, T, T) in [0, 1].

        ``lengths`` (B,) optionally keeps fewer than n tokens per tile.
        """
        b, n = ids.shape
        k = self.config.max_tokens
        if n > k:
            raise ValueError(f"at most {k} tokens per tile, got {n}")
        full = torch.zeros(b, k, dtype=torch.int64, device=ids.device)
        full[:, :n] = ids
        if lengths is None:
            lengths = torch.full((b,), n, device=ids.device)
        keep = torch.arange(k, device=ids.device).unsqueeze(0) < lengths.to(ids.device).unsqueeze(1)
        codes = self.quantizer.ids_to_codes(full).to(self.absent.dtype)
        return self._render(codes, keep).clamp(0, 1)
