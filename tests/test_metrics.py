"""The metrics of vtcodec.metrics, against their definitions on tiny images."""

import math

import numpy as np
import pytest

from vtcodec import metrics

from .conftest import random_image


def _convolve_same(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Zero-padded 2-D convolution, the output centred on the full one, written out as sums."""
    kh, kw = kernel.shape
    h, w = x.shape
    full = np.zeros((h + kh - 1, w + kw - 1))
    for i in range(h):
        for j in range(w):
            full[i : i + kh, j : j + kw] += x[i, j] * kernel
    top, left = (kh - 1) // 2, (kw - 1) // 2
    return full[top : top + h, left : left + w]


def _haarpsi_by_definition(a: np.ndarray, b: np.ndarray) -> float:
    """HaarPSI as the paper defines it (its equations 5-11), with loops and plain numpy."""
    c, alpha = 30.0, 4.2

    def planes(x):
        x = x.astype(np.float64)
        y = 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]
        i = 0.596 * x[..., 0] - 0.274 * x[..., 1] - 0.322 * x[..., 2]
        q = 0.211 * x[..., 0] - 0.523 * x[..., 1] + 0.312 * x[..., 2]
        box = np.full((2, 2), 0.25)
        return [_convolve_same(p, box)[::2, ::2] for p in (y, i, q)]

    def haar(y, scale, vertical):
        side = 2**scale
        k = np.full((side, side), 2.0**-scale)
        k[: side // 2] *= -1
        return _convolve_same(y, k.T if vertical else k)

    (y1, i1, q1), (y2, i2, q2) = planes(a), planes(b)
    box = np.full((2, 2), 0.25)
    i1, q1, i2, q2 = (np.abs(_convolve_same(p, box)) for p in (i1, q1, i2, q2))

    def s(u, v):
        return (2 * u * v + c) / (u**2 + v**2 + c)

    sims, weights = [], []
    for vertical in (False, True):
        g1 = [np.abs(haar(y1, k, vertical)) for k in (1, 2, 3)]
        g2 = [np.abs(haar(y2, k, vertical)) for k in (1, 2, 3)]
        sims.append((s(g1[0], g2[0]) + s(g1[1], g2[1])) / 2)
        weights.append(np.maximum(g1[2], g2[2]))
    sims.append((s(i1, i2) + s(q1, q2)) / 2)
    weights.append((weights[0] + weights[1]) / 2)
    sig = [1 / (1 + np.exp(-alpha * x)) for x in sims]
    mean = sum((g * w).sum() for g, w in zip(sig, weights, strict=True)) / sum(w.sum() for w in weights)
    return (math.log(mean / (1 - mean)) / alpha) ** 2


def test_haarpsi_matches_its_definition():
    for seed, (w, h) in enumerate([(24, 18), (17, 31), (40, 40)]):
        a = np.asarray(random_image(w, h, seed=seed))
        noise = np.random.default_rng(seed).normal(0, 12, a.shape)
        b = np.clip(a + noise, 0, 255).astype(np.uint8)
        assert metrics.haarpsi(a, b) == pytest.approx(_haarpsi_by_definition(a, b), rel=1e-9)


def test_haarpsi_is_one_for_equal_images_symmetric_and_falls_with_noise():
    a = np.asarray(random_image(64, 48, seed=3))
    assert metrics.haarpsi(a, a) == pytest.approx(1.0, abs=1e-9)
    rng = np.random.default_rng(0)
    scores = []
    for sigma in (2, 8, 32):
        b = np.clip(a + rng.normal(0, sigma, a.shape), 0, 255).astype(np.uint8)
        scores.append(metrics.haarpsi(a, b))
        assert metrics.haarpsi(b, a) == pytest.approx(scores[-1], rel=1e-12)
    assert 1 > scores[0] > scores[1] > scores[2] > 0
    flat = np.full((10, 10, 3), 128, np.uint8)
    assert metrics.haarpsi(flat, flat) == pytest.approx(1.0)


def test_psnr_and_missing_packages():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 255
    assert metrics.psnr_rgb(a, b) == pytest.approx(10 * math.log10(48))
    assert math.isnan(metrics.ms_ssim(a, b))  # under 161 px a side
    assert set(metrics.missing()) <= {"ms-ssim", "ssimulacra2"}


def test_ssimulacra2_when_installed():
    pytest.importorskip("ssimulacra2")
    a = np.asarray(random_image(64, 64, seed=1))
    noisy = np.clip(a + np.random.default_rng(1).normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    assert metrics.ssimulacra2(a, a) == pytest.approx(100.0, abs=0.5)
    assert metrics.ssimulacra2(a, noisy) < 90
    assert math.isnan(metrics.ssimulacra2(a[:4, :4], a[:4, :4]))
