"""The TiTok family of 1D tokenizers (TiTok, One-D-Piece), written from the papers and the published
checkpoints' layout, so that their state dicts load as they are.

A ViT encoder reads a tile as 16-pixel patches beside K learned latent tokens; the latent
tokens' outputs are projected to ``token_size`` and vector-quantized (codebook ``quantize``,
l2-normalised for the published VQ models). A ViT decoder reads the tokens beside one mask token
per patch. In the *legacy* form (TiTok L-32, B-64, S-128 and One-D-Piece) it predicts, per patch,
logits over the 1024 codes of MaskGIT-VQGAN, whose soft mixture the MaskGIT-VQGAN pixel decoder
turns into pixels (``pixel_quantize``, ``pixel_decoder``); in the newer form it predicts RGB patches.

Names of modules and parameters follow the published state dicts: ``latent_tokens``,
``encoder.*``, ``decoder.*``, ``quantize.embedding.weight``, ``pixel_quantize.embedding.weight``,
``pixel_decoder.*``. Two details are kept as published, because the weights were trained with them:

- ``is_legacy``: the legacy encoder reinterprets its (K, width) latent outputs as (width, K)
  memory before the 1x1 projection (no transpose); the newer one transposes.
- In the pixel decoder's residual blocks that change width, the 1x1 shortcut convolution is
  applied to the branch's output, not to the block's input.

One-D-Piece was trained with tail-token drop, so any prefix of its tokens decodes; TiTok decodes
only its full sequence (``any_prefix`` is False).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

FAMILIES = ("titok", "one-d-piece")
VIT_SIZES = {"small": (512, 8, 8), "base": (768, 12, 12), "large": (1024, 24, 16)}  # width, layers, heads
PIXEL_CODES = 1024  # MaskGIT-VQGAN's codebook
PIXEL_CHANNELS = 256  # its latent width
PIXEL_HIDDEN = 128
PIXEL_MULT = (1, 1, 2, 2, 4)
PIXEL_BLOCKS = 2


@dataclass(frozen=True)
class TiTokConfig:
    """The hyper-parameters of a TiTok-family model, as the published configs name them."""

    weights_dtype: ClassVar[str] = "float32"  # stored as published: float16 would change the tokens

    architecture: str = "one-d-piece"  # "titok" (fixed length) or "one-d-piece" (any prefix)
    tile_size: int = 256  # crop_size: the square image the model reads
    max_tokens: int = 256  # num_latent_tokens
    codebook_size: int = 4096
    token_size: int = 12
    use_l2_norm: bool = True
    encoder_size: str = "small"  # vit_enc_model_size
    decoder_size: str = "small"  # vit_dec_model_size
    encoder_patch: int = 16
    decoder_patch: int = 16
    is_legacy: bool = True  # legacy: the latent reshape without transpose, and the MaskGIT-VQGAN pixel decoder

    def __post_init__(self) -> None:
        if self.architecture not in FAMILIES:
            raise ValueError(f"unknown TiTok family {self.architecture!r}")
        if self.encoder_size not in VIT_SIZES or self.decoder_size not in VIT_SIZES:
            raise ValueError(f"ViT sizes are {', '.join(VIT_SIZES)}")
        for patch in (self.encoder_patch, self.decoder_patch):
            if patch < 1 or self.tile_size % patch:
                raise ValueError(f"the tile size {self.tile_size} is not a multiple of the patch size {patch}")
        if self.is_legacy and self.tile_size // self.decoder_patch * 16 != self.tile_size:
            raise ValueError("the MaskGIT-VQGAN pixel decoder needs 16-pixel decoder patches")
        if not (1 <= self.max_tokens <= 4096 and 2 <= self.codebook_size <= 1 << 16 and 1 <= self.token_size <= 4096):
            raise ValueError("token count, codebook or token size out of range")

    @property
    def any_prefix(self) -> bool:
        return self.architecture == "one-d-piece"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TiTokConfig:
        return cls(**data)

    @classmethod
    def from_published(cls, config: dict, family: str) -> TiTokConfig:
        """The config of a published checkpoint: its ``model.vq_model`` and ``dataset.preprocessing``
        keys (TiTok's ``config.json``, One-D-Piece's YAML), with the published defaults where absent."""
        try:
            vq = config["model"]["vq_model"]
            crop = config.get("dataset", {}).get("preprocessing", {}).get("crop_size", 256)
            if vq.get("quantize_mode", "vq") != "vq":
                raise ValueError("only vector-quantized (VQ) models have discrete tokens")
            return cls(
                architecture=family,
                tile_size=int(crop),
                max_tokens=int(vq["num_latent_tokens"]),
                codebook_size=int(vq["codebook_size"]),
                token_size=int(vq["token_size"]),
                use_l2_norm=bool(vq.get("use_l2_norm", False)),
                encoder_size=str(vq["vit_enc_model_size"]),
                decoder_size=str(vq["vit_dec_model_size"]),
                encoder_patch=int(vq.get("vit_enc_patch_size", 16)),
                decoder_patch=int(vq.get("vit_dec_patch_size", 16)),
                is_legacy=family == "one-d-piece" or bool(vq.get("is_legacy", True)),  # One-D-Piece: always
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a TiTok config (missing {exc})") from None


def _preset(family: str, size: str, tokens: int) -> TiTokConfig:
    return TiTokConfig(family, max_tokens=tokens, encoder_size=size, decoder_size=size)


# The published configs, by name, for a user who has only the weights (One-D-Piece's configs/*.yaml,
# 1d-tokenizer's configs/infer/TiTok/*.yaml).
PRESETS = {
    "one-d-piece-s256": _preset("one-d-piece", "small", 256),
    "one-d-piece-b256": _preset("one-d-piece", "base", 256),
    "one-d-piece-l256": _preset("one-d-piece", "large", 256),
    "titok-l32": _preset("titok", "large", 32),
    "titok-b64": _preset("titok", "base", 64),
    "titok-s128": _preset("titok", "small", 128),
}


class AttentionBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))``; (L, N, D) in and out."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, 4 * width))
        self.mlp.add_module("gelu", nn.GELU())
        self.mlp.add_module("c_proj", nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class _ViT(nn.Module):
    """What the encoder and decoder share: a class token, patch positions, latent positions, blocks."""

    def __init__(self, size: str, patches: int, tokens: int) -> None:
        super().__init__()
        width, layers, heads = VIT_SIZES[size]
        self.width = width
        self.class_embedding = nn.Parameter(torch.zeros(1, width))
        self.positional_embedding = nn.Parameter(torch.zeros(patches + 1, width))
        self.latent_token_positional_embedding = nn.Parameter(torch.zeros(tokens, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = nn.ModuleList(AttentionBlock(width, heads) for _ in range(layers))
        self.ln_post = nn.LayerNorm(width)

    def blocks(self, x: torch.Tensor) -> torch.Tensor:
        """(N, L, D) through ln_pre and the blocks (which take (L, N, D)), back as (N, L, D)."""
        x = self.ln_pre(x).permute(1, 0, 2)
        for block in self.transformer:
            x = block(x)
        return x.permute(1, 0, 2)


class TiTokEncoder(_ViT):
    def __init__(self, config: TiTokConfig) -> None:
        self.grid = config.tile_size // config.encoder_patch
        super().__init__(config.encoder_size, self.grid**2, config.max_tokens)
        self.legacy, self.tokens, self.token_size = config.is_legacy, config.max_tokens, config.token_size
        p = config.encoder_patch
        self.patch_embed = nn.Conv2d(3, self.width, kernel_size=p, stride=p)
        self.conv_out = nn.Conv2d(self.width, config.token_size, kernel_size=1)

    def forward(self, pixels: torch.Tensor, latent_tokens: torch.Tensor) -> torch.Tensor:
        """Pixels (N, 3, T, T) in [0, 1] -> latents (N, token_size, 1, K)."""
        n = pixels.shape[0]
        patches = self.patch_embed(pixels).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(n, -1, -1).to(patches.dtype)
        x = torch.cat([cls, patches], dim=1) + self.positional_embedding.to(patches.dtype)
        latents = (latent_tokens + self.latent_token_positional_embedding).expand(n, -1, -1).to(x.dtype)
        x = self.blocks(torch.cat([x, latents], dim=1))
        out = self.ln_post(x[:, 1 + self.grid**2 :])  # (N, K, width), contiguous
        if self.legacy:  # as published: the memory of (K, width) read as (width, K)
            out = out.reshape(n, self.width, self.tokens, 1)
        else:
            out = out.reshape(n, self.tokens, self.width, 1).permute(0, 2, 1, 3)
        return self.conv_out(out).reshape(n, self.token_size, 1, self.tokens)


class TiTokDecoder(_ViT):
    def __init__(self, config: TiTokConfig) -> None:
        self.grid = config.tile_size // config.decoder_patch
        super().__init__(config.decoder_size, self.grid**2, config.max_tokens)
        self.legacy, self.patch = config.is_legacy, config.decoder_patch
        self.decoder_embed = nn.Linear(config.token_size, self.width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, self.width))
        w = self.width
        if self.legacy:  # logits over MaskGIT-VQGAN's codes, per patch
            self.ffn = nn.Sequential(nn.Conv2d(w, 2 * w, 1), nn.Tanh(), nn.Conv2d(2 * w, PIXEL_CODES, 1))
            self.conv_out = nn.Identity()
        else:  # RGB patches
            self.ffn = nn.Sequential(nn.Conv2d(w, self.patch**2 * 3, 1))
            self.conv_out = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """Token vectors (N, n, token_size), n <= K -> (N, 1024, G, G) logits, or (N, 3, T, T) pixels."""
        n, length = codes.shape[:2]
        x = self.decoder_embed(codes) + self.latent_token_positional_embedding[:length]
        masks = self.mask_token.expand(n, self.grid**2, -1).to(x.dtype)
        masks = torch.cat([self.class_embedding.expand(n, -1, -1).to(x.dtype), masks], dim=1)
        x = self.blocks(torch.cat([masks + self.positional_embedding.to(x.dtype), x], dim=1))
        x = self.ln_post(x[:, 1 : 1 + self.grid**2])
        x = x.permute(0, 2, 1).reshape(n, self.width, self.grid, self.grid)
        x = self.ffn(x.contiguous())
        if not self.legacy:  # (N, p*p*3, G, G) -> (N, 3, G*p, G*p), channels ordered (p1, p2, c)
            p = self.patch
            x = x.reshape(n, p, p, 3, self.grid, self.grid).permute(0, 3, 4, 1, 5, 2)
            x = x.reshape(n, 3, self.grid * p, self.grid * p)
        return self.conv_out(x)


class Codebook(nn.Module):
    """A vector quantizer's codebook: nearest entry by squared distance, optionally on the unit sphere."""

    def __init__(self, size: int, dim: int, l2: bool) -> None:
        super().__init__()
        self.embedding = nn.Embedding(size, dim, _weight=torch.empty(size, dim))  # loaded, never initialised
        self.l2 = l2

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Vectors (M, dim) -> the index of the nearest entry (M,); distances as |z|² + |e|² - 2 z·e."""
        z = z.float()
        e = self.embedding.weight.float()
        if self.l2:
            z, e = F.normalize(z, dim=-1), F.normalize(e, dim=-1)
        d = z.pow(2).sum(dim=1, keepdim=True) + e.pow(2).sum(dim=1) - 2 * torch.einsum("bd,dn->bn", z, e.T)
        return d.argmin(dim=1)

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        vectors = self.embedding(ids)
        return F.normalize(vectors, dim=-1) if self.l2 else vectors


class PixelQuantizer(nn.Module):
    """MaskGIT-VQGAN's codebook; the TiTok decoder mixes its entries by its predicted code probabilities."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(PIXEL_CODES, PIXEL_CHANNELS, _weight=torch.empty(PIXEL_CODES, PIXEL_CHANNELS))


class ResnetBlock(nn.Module):
    """GroupNorm-SiLU-conv twice; where the width changes, the 1x1 shortcut maps the *branch output*
    (as published: the block returns ``branch + shortcut(branch)``)."""

    def __init__(self, channels_in: int, channels_out: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(32, channels_in, eps=1e-6)
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(32, channels_out, eps=1e-6)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False)
        self.widens = channels_in != channels_out
        if self.widens:
            self.nin_shortcut = nn.Conv2d(channels_out, channels_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return h + (self.nin_shortcut(h) if self.widens else x)


class UpStage(nn.Module):
    def __init__(self, index: int) -> None:
        super().__init__()
        last = len(PIXEL_MULT) - 1
        channels_in = PIXEL_HIDDEN * PIXEL_MULT[min(index + 1, last)]
        channels_out = PIXEL_HIDDEN * PIXEL_MULT[index]
        widths = [channels_in] + [channels_out] * PIXEL_BLOCKS
        self.block = nn.ModuleList(ResnetBlock(a, b) for a, b in itertools.pairwise(widths))
        self.upsamples = index != 0
        if self.upsamples:
            self.upsample_conv = nn.Conv2d(channels_out, channels_out, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.block:
            x = block(x)
        if self.upsamples:
            x = self.upsample_conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return x


class PixelDecoder(nn.Module):
    """MaskGIT-VQGAN's decoder (no attention): 256 channels at 1/16 scale -> RGB, four 2x upsamplings."""

    def __init__(self) -> None:
        super().__init__()
        top = PIXEL_HIDDEN * PIXEL_MULT[-1]
        self.conv_in = nn.Conv2d(PIXEL_CHANNELS, top, 3, padding=1)
        self.mid = nn.ModuleList(ResnetBlock(top, top) for _ in range(PIXEL_BLOCKS))
        self.up = nn.ModuleList(UpStage(i) for i in range(len(PIXEL_MULT)))  # run from the last to the first
        self.norm_out = nn.GroupNorm(32, PIXEL_HIDDEN * PIXEL_MULT[0], eps=1e-6)
        self.conv_out = nn.Conv2d(PIXEL_HIDDEN * PIXEL_MULT[0], 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)
        for block in self.mid:
            x = block(x)
        for stage in reversed(self.up):
            x = stage(x)
        return self.conv_out(F.silu(self.norm_out(x)))


class TiTokTokenizer(nn.Module):
    """A TiTok or One-D-Piece model behind vtcodec's token-space interface (``vtcodec.models.seam``)."""

    def __init__(self, config: TiTokConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = TiTokEncoder(config)
        self.decoder = TiTokDecoder(config)
        self.latent_tokens = nn.Parameter(torch.zeros(config.max_tokens, self.encoder.width))
        self.quantize = Codebook(config.codebook_size, config.token_size, config.use_l2_norm)
        if config.is_legacy:
            self.pixel_quantize = PixelQuantizer()
            self.pixel_decoder = PixelDecoder()

    @property
    def tile_size(self) -> int:
        return self.config.tile_size

    @property
    def max_tokens(self) -> int:
        return self.config.max_tokens

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def any_prefix(self) -> bool:
        return self.config.any_prefix

    @torch.no_grad()
    def encode(self, tiles: torch.Tensor) -> torch.Tensor:
        """Tiles (N, 3, T, T) in [0, 1] -> token ids (N, K) int64."""
        z = self.encoder(tiles.float(), self.latent_tokens)  # (N, C, 1, K)
        n, c, _, k = z.shape
        return self.quantize.nearest(z.permute(0, 2, 3, 1).reshape(n * k, c)).reshape(n, k)

    def _render(self, ids: torch.Tensor) -> torch.Tensor:
        decoded = self.decoder(self.quantize.lookup(ids))
        if not self.config.is_legacy:
            return decoded
        mixed = torch.einsum("nchw,cd->ndhw", decoded.softmax(1), self.pixel_quantize.embedding.weight)
        return self.pixel_decoder(mixed)

    @torch.no_grad()
    def decode(self, ids: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Token ids (N, n), n <= K, each tile's first ``lengths[i]`` kept -> tiles (N, 3, T, T) in [0, 1].

        Tiles of one length run together; a fixed-length model (TiTok) takes only all K tokens.
        """
        n, width = ids.shape
        lengths = torch.full((n,), width) if lengths is None else lengths.cpu()
        if width > self.max_tokens or (n and int(lengths.max()) > width) or (n and int(lengths.min()) < 0):
            raise ValueError(f"0 to {min(width, self.max_tokens)} tokens per tile")
        if not self.any_prefix and n and int(lengths.min()) != self.max_tokens:
            raise ValueError(f"this {self.config.architecture} model decodes only all {self.max_tokens} tokens")
        out = torch.empty((n, 3, self.tile_size, self.tile_size), device=ids.device)
        for length in torch.unique(lengths).tolist():
            rows = (lengths == length).nonzero().flatten().to(ids.device)
            out[rows] = self._render(ids[rows, :length]).float().clamp(0, 1)
        return out

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(tiles))
