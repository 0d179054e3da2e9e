"""Every codec behind one interface: Pillow's JPEG, WebP and AVIF, downscaled variants, and vtcodec."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from vtcodec import codec
from vtcodec.decoders import load_decoder
from vtcodec.rate import largest_passing
from vtcodec.zoo import LoadedModel

SCALES = (1 / 2, 1 / 3, 1 / 4, 1 / 6, 1 / 8)
SIZE_HEADER = 4  # bytes a downscaled file needs to store the original width and height
CLASSIC_SWEEP = (0, 1, 2, 5, 10, 20, 40, 60)


class Codec:
    """Encode pixels at a setting to whole-file bytes, and decode them back."""

    name = "codec"
    description = ""

    def encode(self, pixels: np.ndarray, setting: float) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes, size: tuple[int, int]) -> np.ndarray:
        raise NotImplementedError


class PillowCodec(Codec):
    """A Pillow format with an integer quality setting ``q_min..q_max`` (sizes grow with quality)."""

    def __init__(self, name: str, fmt: str, description: str, q_min: int = 0, q_max: int = 100, **options) -> None:
        self.name, self.format, self.description = name, fmt, description
        self.q_min, self.q_max, self.options = q_min, q_max, options

    def encode(self, pixels: np.ndarray, setting: float) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format=self.format, quality=int(setting), **self.options)
        return buffer.getvalue()

    def decode(self, data: bytes, size: tuple[int, int]) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)


class ScaledCodec(Codec):
    """Downscale by ``scale`` (Lanczos), code with ``base``, upscale back (Lanczos)."""

    def __init__(self, base: PillowCodec, scale: float) -> None:
        self.base, self.scale = base, scale
        self.name = f"{base.name}-down"
        self.q_min, self.q_max = base.q_min, base.q_max

    def small_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return max(1, round(size[0] * self.scale)), max(1, round(size[1] * self.scale))

    def encode(self, pixels: np.ndarray, setting: float) -> bytes:
        image = Image.fromarray(pixels)
        small = image.resize(self.small_size(image.size), Image.Resampling.LANCZOS)
        return bytes(SIZE_HEADER) + self.base.encode(np.asarray(small), setting)

    def decode(self, data: bytes, size: tuple[int, int]) -> np.ndarray:
        small = Image.fromarray(self.base.decode(data[SIZE_HEADER:], self.small_size(size)))
        return np.asarray(small.resize(size, Image.Resampling.LANCZOS), dtype=np.uint8)


class VtcodecCodec(Codec):
    """vtcodec at a number of tokens per tile."""

    def __init__(self, model: LoadedModel, decoder: str | Path | None = None, first: bool = True) -> None:
        self.model = model
        self.decoder = load_decoder(model, decoder)
        self.name = "vtcodec" if first else f"vtcodec-{self.decoder.name}"
        self.description = (
            f"vtcodec, model {model.model_id.hex()}, decoder {self.decoder.name}, tokens per tile as the setting"
        )

    def encode(self, pixels: np.ndarray, setting: float) -> bytes:
        return codec.compress(pixels, int(setting), model=self.model)

    def decode(self, data: bytes, size: tuple[int, int]) -> np.ndarray:
        return np.asarray(codec.decompress(data, model=self.model, decoder=self.decoder), dtype=np.uint8)


def classic_codecs() -> dict[str, PillowCodec]:
    return {
        "jpeg": PillowCodec("jpeg", "JPEG", "Pillow JPEG, optimize=True", 1, 95, optimize=True),
        "webp": PillowCodec("webp", "WEBP", "Pillow WebP, method=6", 0, 100, method=6),
        "avif": PillowCodec("avif", "AVIF", "Pillow AVIF (libavif)", 0, 100),
    }


def largest_fitting(encode: Callable[[int], bytes], q_min: int, q_max: int, max_bytes: int) -> tuple[int, bytes] | None:
    """Bisection over an integer quality: the quality whose file is the largest that is <= ``max_bytes``.

    Sizes are assumed to grow with quality; ``None`` if even ``q_min`` is too big.
    The qualities within 2 of the bisection result are also tried, since real
    encoders are not perfectly monotone.
    """
    cache: dict[int, bytes] = {}

    def size(q: int) -> int:
        if q not in cache:
            cache[q] = encode(q)
        return len(cache[q])

    lo = largest_passing(q_min, q_max, lambda q: size(q) <= max_bytes)
    if lo is None:
        return None
    best = lo
    for q in range(max(lo - 2, q_min), min(lo + 2, q_max) + 1):
        if size(q) <= max_bytes and size(q) > size(best):
            best = q
    return best, cache[best]
