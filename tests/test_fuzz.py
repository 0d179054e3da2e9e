"""Mutation fuzzing of the decoder: every input decodes or raises a documented vtcodec error."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

import vtcodec
from vtcodec.codec import read_tokens
from vtcodec.errors import FormatError, UnknownModelError

from .conftest import random_image
from .icc import display_p3

CASES = 5000


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """Bit flips, truncation, extension, splices and extreme varints; CRC refreshed half the time."""
    body = bytearray(data[:-4])
    kind = rng.integers(6)
    if kind == 0:
        for _ in range(rng.integers(1, 4)):
            i = rng.integers(len(body))
            body[i] ^= 1 << rng.integers(8)
    elif kind == 1:
        body = body[: rng.integers(len(body))]
    elif kind == 2:
        body += bytes(rng.integers(0, 256, rng.integers(1, 40), dtype=np.uint8))
    elif kind == 3:
        i = rng.integers(5, len(body))
        body[i:i] = b"\xff" * int(rng.integers(1, 12)) + b"\x7f"
    elif kind == 4:
        i, j = sorted(rng.integers(0, len(body), 2))
        body = body[:i] + body[j:] + body[i:j]
    else:
        i = rng.integers(len(body))
        body[i] = int(rng.choice([0x00, 0x7F, 0x80, 0xFF]))
    return _with_crc(bytes(body)) if rng.random() < 0.5 else bytes(body) + data[-4:]


@pytest.fixture(scope="module")
def seeds(tiny_model):
    images = [random_image(w, h, seed=w) for w, h in [(1, 1), (40, 33), (64, 64), (100, 20)]]
    files = [
        vtcodec.compress(im, tokens=t, model=tiny_model) for im, t in zip(images, [8, 3, [0, 8, 1, 5], 2], strict=True)
    ]
    # Files with chunks: a colour profile, XMP, EXIF and an alpha plane.
    cutout = random_image(40, 30, seed=4).convert("RGBA")
    cutout.putalpha(Image.fromarray((np.arange(40 * 30).reshape(30, 40) % 251).astype(np.uint8), "L"))
    cutout.info.update(icc_profile=display_p3(), xmp=b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>", exif=_exif())
    files.append(vtcodec.compress(cutout, 4, model=tiny_model, metadata="all"))
    files.append(vtcodec.compress(cutout, 2, model=tiny_model, metadata="exif"))
    return files


def _exif() -> bytes:
    exif = Image.Exif()
    exif[0x0112], exif[0x010F] = 3, "fuzz"
    return exif.tobytes()


def test_fuzzed_files_decode_or_raise_format_error(seeds, tiny_model):
    rng = np.random.default_rng(2026)
    outcomes = {"ok": 0, "format": 0, "model": 0}
    for case in range(CASES):
        data = mutate(seeds[case % len(seeds)], rng)
        try:
            stream = read_tokens(data, tiny_model)
        except FormatError:
            outcomes["format"] += 1
            continue
        except UnknownModelError:
            outcomes["model"] += 1
            continue
        assert stream.ids.shape[0] == stream.header.grid[0] * stream.header.grid[1]
        if stream.extras.alpha is not None:
            assert stream.extras.alpha.shape == (stream.header.height, stream.header.width)
        assert (stream.ids >= 0).all() and (stream.ids < tiny_model.codebook_size).all()
        outcomes["ok"] += 1
    assert outcomes["format"] > CASES // 2
    assert sum(outcomes.values()) == CASES
