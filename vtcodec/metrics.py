"""Full-reference image quality metrics on uint8 RGB arrays, one implementation of each.

- ``psnr-rgb``: PSNR over all three channels (dB).
- ``ms-ssim``: multi-scale SSIM (``pytorch-msssim``, the ``eval`` extra; images of at least 161 px a side).
- ``haarpsi``: the Haar wavelet-based perceptual similarity index (Reisenhofer, Bosse,
  Kutyniok and Wiegand, "A Haar wavelet-based perceptual similarity index for image
  quality assessment", Signal Processing: Image Communication 61, 2018), written here
  from the paper's definition: weight-free, 0 … 1, 1 for identical images.
- ``ssimulacra2``: SSIMULACRA 2, the metric the JPEG XL and AVIF teams tune with
  (the ``ssimulacra2`` package, the ``eval`` extra): up to 100, 90 is visually lossless.

A metric whose package is not installed gives NaN; :func:`missing` says which.
"""

from __future__ import annotations

import importlib.util
import io
import math
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

HAARPSI_C = 30.0  # the paper's constant for 8-bit images
HAARPSI_ALPHA = 4.2
HAARPSI_SCALES = 3


def psnr_rgb(reference: np.ndarray, decoded: np.ndarray) -> float:
    """PSNR-RGB in dB of ``decoded`` against uint8 ``reference`` pixels."""
    mse = np.mean((np.asarray(reference, dtype=np.float64) - np.asarray(decoded, dtype=np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def ms_ssim(reference: np.ndarray, decoded: np.ndarray) -> float:
    """MS-SSIM (data range 255), or NaN without pytorch-msssim or below 161 px a side."""
    try:
        from pytorch_msssim import ms_ssim as compute  # optional: the eval extra
    except ImportError:
        return math.nan
    if min(reference.shape[:2]) < 161:
        return math.nan

    def tensor(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(x)).permute(2, 0, 1)[None].double()

    return float(compute(tensor(reference), tensor(decoded), data_range=255))


def _conv_same(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """2-D convolution of (H, W) ``x`` with zero padding, the output centred on the full one (as scipy's 'same')."""
    kh, kw = kernel.shape
    padded = F.pad(x[None, None], (kw - 1, kw - 1, kh - 1, kh - 1))
    full = F.conv2d(padded, kernel.flip(0, 1)[None, None])[0, 0]
    top, left = (kh - 1) // 2, (kw - 1) // 2
    return full[top : top + x.shape[0], left : left + x.shape[1]]


def _haar_responses(y: torch.Tensor) -> list[torch.Tensor]:
    """Haar wavelet responses at scales 1 … 3: the horizontal ones, then the vertical ones."""
    horizontal, vertical = [], []
    for scale in range(1, HAARPSI_SCALES + 1):
        side = 2**scale
        haar = torch.full((side, side), 2.0**-scale, dtype=y.dtype)
        haar[: side // 2] *= -1
        horizontal.append(_conv_same(y, haar))
        vertical.append(_conv_same(y, haar.T.contiguous()))
    return horizontal + vertical


def haarpsi(reference: np.ndarray, decoded: np.ndarray) -> float:
    """HaarPSI of two uint8 RGB images (0 … 1; 1 when they are equal), with the paper's 2x subsampling."""
    c, alpha = HAARPSI_C, HAARPSI_ALPHA

    def yiq(pixels: np.ndarray) -> tuple[torch.Tensor, ...]:
        x = torch.from_numpy(np.asarray(pixels, dtype=np.float64))
        r, g, b = x[..., 0], x[..., 1], x[..., 2]
        planes = (
            0.299 * r + 0.587 * g + 0.114 * b,
            0.596 * r - 0.274 * g - 0.322 * b,
            0.211 * r - 0.523 * g + 0.312 * b,
        )
        box = torch.full((2, 2), 0.25, dtype=torch.float64)
        return tuple(_conv_same(p, box)[::2, ::2] for p in planes)  # the paper's subsampling

    y1, i1, q1 = yiq(reference)
    y2, i2, q2 = yiq(decoded)
    h1, h2 = _haar_responses(y1), _haar_responses(y2)
    box = torch.full((2, 2), 0.25, dtype=torch.float64)
    i1, q1, i2, q2 = (_conv_same(p, box).abs() for p in (i1, q1, i2, q2))

    def similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (2 * a * b + c) / (a**2 + b**2 + c)

    n = HAARPSI_SCALES
    weights, local = [], []
    for orientation in range(2):
        first = orientation * n
        # the weight is the coarsest scale's response; the similarity uses the two finer scales
        weights.append(torch.maximum(h1[first + 2].abs(), h2[first + 2].abs()))
        local.append(sum(similarity(h1[first + s].abs(), h2[first + s].abs()) for s in range(2)) / 2)
    weights.append((weights[0] + weights[1]) / 2)
    local.append((similarity(i1, i2) + similarity(q1, q2)) / 2)
    w, s = torch.stack(weights), torch.stack(local)
    total = w.sum()
    if total <= 0:  # two flat images: no structure to compare, only colour
        return float(s[2].mean()) if s.numel() else 1.0
    mean = float((torch.sigmoid(alpha * s) * w).sum() / total)
    mean = min(max(mean, 1e-12), 1 - 1e-12)
    return (math.log(mean / (1 - mean)) / alpha) ** 2


def ssimulacra2(reference: np.ndarray, decoded: np.ndarray) -> float:
    """SSIMULACRA 2 score (up to 100), or NaN without the ``ssimulacra2`` package or below 8 px a side."""
    try:
        from ssimulacra2 import compute_ssimulacra2  # optional: the eval extra
    except ImportError:
        return math.nan
    if min(reference.shape[:2]) < 8:
        return math.nan

    def png(pixels: np.ndarray) -> io.BytesIO:
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8), "RGB").save(buffer, "PNG", compress_level=0)
        buffer.seek(0)
        return buffer

    return float(compute_ssimulacra2(png(reference), png(decoded)))


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "psnr-rgb": psnr_rgb,
    "ms-ssim": ms_ssim,
    "haarpsi": haarpsi,
    "ssimulacra2": ssimulacra2,
}
PACKAGES = {"ms-ssim": "pytorch_msssim", "ssimulacra2": "ssimulacra2"}  # the metrics that need a package


def missing() -> list[str]:
    """The metrics whose package is not installed (install the ``eval`` extra)."""

    return [name for name, module in PACKAGES.items() if importlib.util.find_spec(module) is None]
