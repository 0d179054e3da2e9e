"""ST-LPIPS written here against the weights' layout, and the reference values of the original package."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from vtcodec.errors import InputError
from vtcodec.perceptual import (
    STLPIPS,
    PatchDiscriminator,
    lattice_distance,
    load_stlpips,
    spectral_amplitude_distance,
)

from .conftest import ROOT


def test_st_lpips_is_zero_for_equal_images_and_differentiable(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "w.pth"
    torch.save({k: v.abs() if "lin" in k else v for k, v in STLPIPS().state_dict().items()}, path)
    lpips = load_stlpips(path)
    x = torch.rand(2, 3, 64, 64)
    assert torch.allclose(lpips(x, x), torch.zeros(2))
    y = x.clone().requires_grad_(True)
    d = lpips(x, (y + 0.1 * torch.randn_like(y)).clamp(0, 1))
    d.sum().backward()
    assert (d > 0).all() and y.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in lpips.parameters())
    logits = PatchDiscriminator()(x)
    assert logits.shape[0] == 2 and logits.shape[1] == 1


def test_spectral_distance_sees_a_lattice_and_not_a_shift():
    torch.manual_seed(0)
    smooth = torch.nn.functional.avg_pool2d(torch.rand(2, 3, 72, 72), 9, stride=1)  # 64 x 64, little high frequency
    assert torch.allclose(spectral_amplitude_distance(smooth, smooth), torch.zeros(2))
    rolled = torch.roll(smooth, shifts=(3, 5), dims=(2, 3))  # a circular shift changes phases only
    assert spectral_amplitude_distance(smooth, rolled).max() < 1e-5
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    amplitude = 0.02
    lattice = smooth + amplitude * torch.cos(torch.pi * xx / 2) * torch.cos(torch.pi * yy / 2)  # 4-pixel period
    # Its orthonormal spectrum: two half-plane peaks of 64 * amplitude / 4 per channel, among 64 x 33 bins.
    expected = 2 * 64 * amplitude / 4 / (64 * 33)
    assert torch.allclose(spectral_amplitude_distance(smooth, lattice), torch.full((2,), expected), rtol=0.1)
    x = smooth.clone().requires_grad_(True)
    spectral_amplitude_distance(x, lattice).sum().backward()
    assert x.grad.abs().sum() > 0


def test_lattice_distance_sees_a_grid_lattice_more_than_noise_of_equal_power():
    torch.manual_seed(0)
    smooth = torch.nn.functional.avg_pool2d(torch.rand(2, 3, 136, 136), 9, stride=1)  # 128 x 128
    assert torch.allclose(lattice_distance(smooth, smooth), torch.zeros(2))
    yy, xx = torch.meshgrid(torch.arange(128), torch.arange(128), indexing="ij")
    amplitude = 0.02
    grid = amplitude * torch.cos(torch.pi * xx / 4) * torch.cos(torch.pi * yy / 4)  # period 8, a harmonic of 16
    # The pattern is linear and the lattice is 16-periodic, so the distance is its mean |value|:
    # amplitude * (mean |cos(pi k / 4)| over k = 0..7) ** 2.
    mean_abs_cos = (2 + 4 * 2**-0.5) / 8
    expected = amplitude * mean_abs_cos**2
    assert torch.allclose(lattice_distance(smooth, smooth + grid), torch.full((2,), expected), rtol=1e-4)
    noise = torch.randn_like(smooth) * grid.pow(2).mean().sqrt()  # the same power, not tied to the grid
    assert (lattice_distance(smooth, smooth + noise) < expected / 2).all()
    x = smooth.clone().requires_grad_(True)
    lattice_distance(x, smooth + grid).sum().backward()
    assert x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="multiple"):
        lattice_distance(smooth, smooth, period=16, window=40)
    with pytest.raises(ValueError, match="no whole"):
        lattice_distance(smooth[..., :32, :32], smooth[..., :32, :32])


def test_block_spectra_see_texture_moved_into_a_smooth_region():
    torch.manual_seed(0)
    image = torch.full((1, 3, 64, 64), 0.5)
    image[..., :32] += 0.2 * (torch.rand(1, 3, 64, 32) - 0.5)  # texture on the left, flat on the right
    moved = torch.roll(image, shifts=32, dims=3)  # the same texture on the right
    assert spectral_amplitude_distance(image, moved) < 1e-5  # one spectrum of the whole: blind to where
    assert spectral_amplitude_distance(image, moved, patch=16) > 0.01  # 16-pixel blocks: the texture moved
    assert torch.allclose(spectral_amplitude_distance(image, image, patch=16), torch.zeros(1))
    with pytest.raises(ValueError, match="no 16x16 block"):
        spectral_amplitude_distance(image[..., :8], image[..., :8], patch=16)


def test_st_lpips_on_vgg16_loads_its_own_weights_and_not_alexnets(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "vgg.pth"
    torch.save({k: v.abs() if "lin" in k else v for k, v in STLPIPS("vgg").state_dict().items()}, path)
    lpips = load_stlpips(path, "vgg")
    x = torch.rand(1, 3, 48, 48)
    assert torch.allclose(lpips(x, x), torch.zeros(1))
    y = x.clone().requires_grad_(True)
    d = lpips(x, (y + 0.1 * torch.randn_like(y)).clamp(0, 1))
    d.sum().backward()
    assert d.item() > 0 and y.grad.abs().sum() > 0
    with pytest.raises(InputError, match="not the ST-LPIPS AlexNet weights"):
        load_stlpips(path, "alex")  # VGG16's tensors do not fit AlexNet
    with pytest.raises(ValueError, match="unknown ST-LPIPS network"):
        STLPIPS("resnet")


def test_unusable_weights_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a state dict")
    with pytest.raises(InputError, match="not the ST-LPIPS AlexNet weights"):
        load_stlpips(bad)
    torch.save({"something": torch.zeros(1)}, bad)
    with pytest.raises(InputError, match="missing"):
        load_stlpips(bad)


WHEEL = os.environ.get("VTCODEC_STLPIPS_WHEEL", "")
KODIM23 = ROOT.parent / "shared" / "data" / "kodak" / "kodim23.png"


@pytest.mark.skipif(not (WHEEL and Path(WHEEL).exists() and KODIM23.exists()), reason="needs the wheel and Kodak")
def test_matches_the_original_package():
    """Values of stlpips-pytorch 0.0.2 itself (its torchvision import stubbed), measured 2026-12-02."""
    from PIL import Image

    lpips = load_stlpips(WHEEL)
    img = np.asarray(Image.open(KODIM23).convert("RGB"))[:256, :256]
    x = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255
    blur = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(x, 4), scale_factor=4, mode="bilinear")
    with torch.no_grad():
        assert lpips(x, blur).item() == pytest.approx(0.11110126972198486, rel=1e-5)
    # VGG16: the package's own shift-tolerant vggnet (torchvision stubbed) gives the same features
    # bit for bit; 0.24253575 is LPIPS over those features with the wheel's linear layers (2026-12-03).
    with torch.no_grad():
        assert load_stlpips(WHEEL, "vgg")(x, blur).item() == pytest.approx(0.2425357550382614, rel=1e-5)
