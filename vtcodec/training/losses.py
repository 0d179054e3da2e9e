"""Training losses and the PSNR the logs report."""

from __future__ import annotations

import torch

from vtcodec.errors import InputError
from vtcodec.training.config import TrainConfig

LOSSES = ("mse", "log-mse", "mse+msssim")
MSSSIM_WINDOW = 7  # pixels; pytorch-msssim needs a side longer than (window - 1) * 16 for its five scales


def msssim_dissimilarity(rec: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - MS-SSIM of a batch in [0, 1], as the ``mse+msssim`` loss uses it (needs pytorch-msssim)."""
    from pytorch_msssim import ms_ssim  # optional: the eval extra, for the mse+msssim loss

    return 1 - ms_ssim(rec, target, data_range=1.0, win_size=MSSSIM_WINDOW)


def reconstruction_loss(rec: torch.Tensor, target: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """The training loss of a batch in [0, 1]: ``cfg.loss`` is one of ``LOSSES``.

    ``mse+msssim`` adds ``cfg.msssim_weight * msssim_dissimilarity`` (a 7-pixel window,
    so tiles of 128 pixels fit its five scales) to the MSE; the default weight
    gives both terms about equal gradients at the v3 model's operating point
    (``benchmarks/probes/loss_balance.py``: on held-out crops at 64 tokens the MS-SSIM term's
    decoder gradient is about 45 times the MSE's).
    """
    mse = ((rec - target) ** 2).flatten(1).mean(1)
    if cfg.loss == "mse":
        return mse.mean()
    if cfg.loss == "log-mse":
        return torch.log(mse + 1e-5).mean()
    if cfg.loss == "mse+msssim":
        return mse.mean() + cfg.msssim_weight * msssim_dissimilarity(rec, target)
    raise ValueError(f"unknown loss {cfg.loss!r}; choose from {', '.join(LOSSES)}")


def check_loss(cfg: TrainConfig, tile_size: int) -> None:
    """Fail before training starts if ``cfg.loss`` cannot run."""
    if cfg.loss not in LOSSES:
        raise InputError(f"unknown loss {cfg.loss!r}; choose from {', '.join(LOSSES)}")
    if cfg.loss == "mse+msssim":
        try:
            import pytorch_msssim  # noqa: F401
        except ImportError:
            raise InputError("loss 'mse+msssim' needs pytorch-msssim: pip install 'vtcodec[eval]'") from None
        limit = (MSSSIM_WINDOW - 1) * 16
        if tile_size <= limit:
            raise InputError(f"loss 'mse+msssim' needs tiles larger than {limit} pixels, not {tile_size}")


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample PSNR in dB for tensors in [0, 1]."""
    mse = ((x - y) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return -10 * torch.log10(mse)


def perceptual_windows(
    rec: torch.Tensor, crops: torch.Tensor, side: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random ``side``² window of each decoded and original crop (both whole when ``side`` is 0)."""
    h, w = crops.shape[-2:]
    if side <= 0 or side >= min(h, w):
        return rec, crops
    top = torch.randint(0, h - side + 1, (len(crops),), generator=gen).tolist()
    left = torch.randint(0, w - side + 1, (len(crops),), generator=gen).tolist()
    pick = [(slice(t, t + side), slice(x, x + side)) for t, x in zip(top, left, strict=True)]
    windows = (torch.stack([img[:, r, c] for img, (r, c) in zip(batch, pick, strict=True)]) for batch in (rec, crops))
    return tuple(windows)
