"""Training data: random crops from folders of photos, held in memory as uint8."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vtcodec.imageio import IMAGE_SUFFIXES, to_rgb


def list_images(folders: Iterable[str | Path]) -> list[Path]:
    """All image files below ``folders`` (recursive), sorted for reproducibility."""
    files: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if folder.is_file():
            files.append(folder)
            continue
        files += [p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files)


def load_rgb(path: Path, min_side: int) -> np.ndarray | None:
    """Load as an RGB uint8 array, upscaling images smaller than ``min_side``."""
    with Image.open(path) as img:
        img = to_rgb(img)
    if min(img.size) < min_side:
        scale = min_side / min(img.size)
        img = img.resize((max(min_side, round(img.width * scale)), max(min_side, round(img.height * scale))))
    return np.asarray(img, dtype=np.uint8)


class CropSampler:
    """Random ``size``² crops at a random downscale in ``[min_scale, 1]``, with flips.

    The training photos are JPEG-sourced; downscaling the crop washes out their
    block artifacts.
    """

    def __init__(self, images: Sequence[np.ndarray], size: int, min_scale: float = 0.5, seed: int = 0) -> None:
        if not images:
            raise ValueError("no training images")
        self.images = list(images)
        self.size = size
        self.min_scale = min_scale
        self.rng = np.random.default_rng(seed)

    def sample(self, batch: int) -> torch.Tensor:
        out = np.empty((batch, self.size, self.size, 3), dtype=np.uint8)
        for i in range(batch):
            img = self.images[self.rng.integers(len(self.images))]
            h, w = img.shape[:2]
            max_scale_side = min(h, w) / self.size
            scale = self.rng.uniform(self.min_scale, 1.0)
            side = int(min(self.size / scale, self.size * max_scale_side))
            y = self.rng.integers(0, h - side + 1)
            x = self.rng.integers(0, w - side + 1)
            crop = img[y : y + side, x : x + side]
            if side != self.size:
                crop = np.asarray(Image.fromarray(crop).resize((self.size, self.size), Image.Resampling.BICUBIC))
            if self.rng.random() < 0.5:
                crop = crop[:, ::-1]
            out[i] = crop
        return torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0)

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


def center_crops(images: Sequence[np.ndarray], size: int) -> torch.Tensor:
    """One deterministic center crop per image, for held-out evaluation."""
    crops = []
    for img in images:
        h, w = img.shape[:2]
        y, x = (h - size) // 2, (w - size) // 2
        crops.append(img[y : y + size, x : x + size])
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div_(255.0)
