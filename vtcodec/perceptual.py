"""Perceptual training losses for decoders: ST-LPIPS on our own AlexNet or VGG16, and a patch discriminator.

Training only; decoding never imports this module.

**ST-LPIPS** (Ghildyal and Liu, "Shift-tolerant perceptual similarity metric", ECCV
2022) is LPIPS over a shift-tolerant AlexNet: stride-1 first convolution, blur-pool
downsampling with reflection padding. Its package, ``stlpips-pytorch``, imports
torchvision, which does not import beside the CPU torch here, so the network is
written here from the paper's architecture, and only its weights are read: the
plain state dicts ``stlpips_pytorch/weights/vST0.0/alex_shift_tolerant.pth`` (and
``vgg_shift_tolerant.pth`` for the VGG16 variant), straight
from the wheel (``pip download stlpips-pytorch==0.0.2 --no-deps``) or extracted.
The weights are for research use (see the model card); they never ship with vtcodec.

**Spectral amplitude distance**: the L1 distance of amplitude spectra, a guard against
periodic artefacts (see :func:`spectral_amplitude_distance`).

**Patch discriminator**: a small PatchGAN (Isola et al. 2017) with spectral norm, used
with the hinge loss, as HiFiC and MS-ILLM's GAN variants use a conditional one.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from vtcodec.errors import InputError


class BlurPool(nn.Module):
    """Blur with the binomial [1, 2, 1] filter (reflection padding of 2), then subsample by 2."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        a = torch.tensor([1.0, 2.0, 1.0])
        filt = a[:, None] * a[None, :]
        self.register_buffer("filt", (filt / filt.sum())[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), self.filt, stride=2, groups=x.shape[1])


class _FiveSlices(nn.Module):
    """A feature network as five ``slice1`` … ``slice5`` stages; returns the output of each."""

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for stage in (self.slice1, self.slice2, self.slice3, self.slice4, self.slice5):
            x = stage(x)
            outs.append(x)
        return outs


class ShiftTolerantAlexNet(_FiveSlices):
    """AlexNet's features with blur pooling; five outputs, after each ReLU stage (names as in the weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.slice1 = nn.Sequential()
        self.slice1.add_module("0", nn.Conv2d(3, 64, 11, stride=1, padding=2))
        self.slice1.add_module("1", BlurPool(64))
        self.slice1.add_module("2", nn.ReLU())
        self.slice2 = nn.Sequential()
        self.slice2.add_module("3", nn.MaxPool2d(3, stride=1))
        self.slice2.add_module("4", BlurPool(64))
        self.slice2.add_module("5", nn.Conv2d(64, 192, 5, padding=2))
        self.slice2.add_module("6", nn.ReLU())
        self.slice3 = nn.Sequential()
        self.slice3.add_module("7", nn.MaxPool2d(3, stride=1))
        self.slice3.add_module("8", BlurPool(192))
        self.slice3.add_module("9", nn.Conv2d(192, 384, 3, padding=1))
        self.slice3.add_module("10", nn.ReLU())
        self.slice4 = nn.Sequential()
        self.slice4.add_module("11", nn.Conv2d(384, 256, 3, padding=1))
        self.slice4.add_module("12", nn.ReLU())
        self.slice5 = nn.Sequential()
        self.slice5.add_module("13", nn.Conv2d(256, 256, 3, padding=1))
        self.slice5.add_module("14", nn.ReLU())


class ShiftTolerantVGG16(_FiveSlices):
    """VGG16's features with each max-pool at stride 1 followed by a blur pool; five outputs (relu1_2 to relu5_3)."""

    def __init__(self) -> None:
        super().__init__()
        stages = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
        index, channels = 0, 3
        for number, widths in enumerate(stages, start=1):
            stage = nn.Sequential()
            if number > 1:  # the pool that ends the previous VGG block opens this slice, as in the weights
                stage.add_module(str(index), nn.MaxPool2d(2, stride=1))
                stage.add_module(str(index + 1), BlurPool(channels))
                index += 2
            for width in widths:
                stage.add_module(str(index), nn.Conv2d(channels, width, 3, padding=1))
                stage.add_module(str(index + 1), nn.ReLU())
                index, channels = index + 2, width
            self.add_module(f"slice{number}", stage)


class FeatureNet(NamedTuple):
    """One ST-LPIPS feature network: its module, the channels of its five outputs, its weight file in
    the wheel, and its name in messages."""

    build: type[nn.Module]
    channels: tuple[int, ...]
    member: str
    label: str


_WHEEL_DIR = "stlpips_pytorch/weights/vST0.0"
FEATURE_NETS = {
    "alex": FeatureNet(
        ShiftTolerantAlexNet, (64, 192, 384, 256, 256), f"{_WHEEL_DIR}/alex_shift_tolerant.pth", "AlexNet"
    ),
    "vgg": FeatureNet(ShiftTolerantVGG16, (64, 128, 256, 512, 512), f"{_WHEEL_DIR}/vgg_shift_tolerant.pth", "VGG16"),
}


class _Linear(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, 1, bias=False))  # index 1, as saved

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class STLPIPS(nn.Module):
    """ST-LPIPS distance of images in [0, 1], one value per image (0 for equal images).

    ``net`` is the feature network: ``"alex"`` (cheap) or ``"vgg"`` (VGG16, the LPIPS authors'
    choice for a training loss; several times the cost).
    """

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        if net not in FEATURE_NETS:
            raise ValueError(f"unknown ST-LPIPS network {net!r} (known: {', '.join(FEATURE_NETS)})")
        self.scaling_layer = nn.Module()
        self.scaling_layer.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None])
        self.scaling_layer.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450])[None, :, None, None])
        self.net = FEATURE_NETS[net].build()
        for i, c in enumerate(FEATURE_NETS[net].channels):
            self.add_module(f"lin{i}", _Linear(c))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        def features(img: torch.Tensor) -> list[torch.Tensor]:
            scaled = (img * 2 - 1 - self.scaling_layer.shift) / self.scaling_layer.scale
            return self.net(scaled)

        total = 0.0
        for i, (a, b) in enumerate(zip(features(x), features(y), strict=True)):
            a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + getattr(self, f"lin{i}")((a - b) ** 2).mean(dim=(1, 2, 3))
        return total


def load_stlpips(path: str | Path, net: str = "alex") -> STLPIPS:
    """ST-LPIPS on ``net`` with the weights of ``path``: the ``stlpips-pytorch`` wheel, or the ``.pth`` taken
    from it."""
    path = Path(path)
    model = STLPIPS(net)
    try:
        if zipfile.is_zipfile(path) and path.suffix == ".whl":
            with zipfile.ZipFile(path) as wheel:
                data = wheel.read(FEATURE_NETS[net].member)
        else:
            data = path.read_bytes()
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        model.load_state_dict({k: v for k, v in state.items() if not k.endswith("filt")}, strict=False)
        missing = [k for k in model.state_dict() if k not in state and not k.endswith("filt")]
        if missing:
            raise ValueError(f"missing {missing[:3]}")
    except MemoryError:
        raise
    except Exception as exc:  # torch.load of a foreign file raises UnpicklingError, struct.error, EOFError, ...
        raise InputError(f"{path}: not the ST-LPIPS {FEATURE_NETS[net].label} weights ({exc})") from None
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


class PatchDiscriminator(nn.Module):
    """A PatchGAN: real/fake logits on overlapping patches (about 70 px), spectral-normalized convolutions."""

    def __init__(self, width: int = 64, layers: int = 3) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        blocks: list[nn.Module] = [sn(nn.Conv2d(3, width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
        channels = width
        for i in range(1, layers):
            out = min(width * 2**i, 8 * width)
            blocks += [sn(nn.Conv2d(channels, out, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            channels = out
        blocks += [sn(nn.Conv2d(channels, channels, 4, padding=1)), nn.LeakyReLU(0.2)]
        blocks.append(sn(nn.Conv2d(channels, 1, 4, padding=1)))
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2 - 1)


def spectral_amplitude_distance(x: torch.Tensor, y: torch.Tensor, patch: int = 0) -> torch.Tensor:
    """Mean L1 distance of the amplitude spectra (orthonormal 2D FFT per channel), one value per image.

    Blind to phase, it asks for the original's energy at each spatial frequency: it
    penalizes both missing detail (blur) and energy that the original lacks, such as the
    periodic lattice that a decoder's pixel-shuffle layers can add when a feature loss
    rewards texture (Jiang et al., "Focal frequency loss", ICCV 2021, without the focal weights).
    With ``patch`` > 0 the spectra are those of each ``patch``² block (the image cropped to
    whole blocks), so the energy must also be where the original has it: texture moved
    into a smooth region costs as much as texture lost.
    """
    if patch > 0:
        x, y = (_blocks(t, patch) for t in (x, y))
    fx = torch.fft.rfft2(x, norm="ortho").abs()
    fy = torch.fft.rfft2(y, norm="ortho").abs()
    return (fx - fy).abs().flatten(1).mean(1)


def lattice_distance(x: torch.Tensor, y: torch.Tensor, period: int = 16, window: int = 64) -> torch.Tensor:
    """Mean L1 distance of the two images' ``period``-periodic patterns, one value per image.

    Each ``window``² window (the images cropped to whole windows, aligned to pixel (0, 0)) is cut
    into ``period``² blocks; their mean, less its own mean, is the window's periodic pattern: the
    energy at the harmonics of 1/``period`` in both axes, which is where a decoder that stamps one
    texture template into every token cell (or every pixel-shuffle stride) puts the lattice that
    a feature loss can reward. Natural content averages out across
    the blocks; a lattice fixed to the pixel grid does not, so the term costs a lattice far more
    than MSE does and leaves content-dependent texture to the other terms.
    """
    if window % period:
        raise ValueError(f"the window ({window}) must be a multiple of the period ({period})")
    if min(x.shape[-2:]) < window:
        raise ValueError(f"images of {x.shape[-1]} x {x.shape[-2]} hold no whole {window}-pixel window")
    per_side = window // period

    def pattern(images: torch.Tensor) -> torch.Tensor:
        windows = _blocks(images, window)  # (B, C, R, S, window, window)
        b, c, r, s = windows.shape[:4]
        cells = windows.reshape(b, c, r, s, per_side, period, per_side, period).mean(dim=(4, 6))
        return cells - cells.mean(dim=(-2, -1), keepdim=True)

    return (pattern(x) - pattern(y)).abs().flatten(1).mean(1)


def _blocks(images: torch.Tensor, side: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H // side, W // side, side, side): the image's whole ``side``² blocks."""
    b, c, h, w = images.shape
    rows, cols = h // side, w // side
    if rows == 0 or cols == 0:
        raise ValueError(f"an image of {w}x{h} holds no {side}x{side} block")
    cropped = images[:, :, : rows * side, : cols * side]
    return cropped.reshape(b, c, rows, side, cols, side).permute(0, 1, 2, 4, 3, 5)


def hinge_discriminator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def hinge_generator_loss(fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()
