"""Mutation fuzzing of the decoder: every input decodes or raises a documented vtcodec error."""

import dataclasses
import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

import vtcodec
from vtcodec import container, metadata
from vtcodec.errors import FormatError, InputError, UnknownModelError
from vtcodec.pipeline import Layout, read_tokens

from .conftest import random_image
from .icc import display_p3

CASES = 5000


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def hostile(data: bytes, rng: np.random.Generator) -> bytes | None:
    """A well-formed file (valid checks) that lies: a huge declared size, inflated token counts, a
    payload cut short, or an alpha chunk that inflates to a large plane. None if ``data`` does not parse.
    For a version 2 file the lie is told about one of its layers' payloads, then all checks are redone."""
    try:
        parsed = container.parse(data)
    except FormatError:
        return None
    header = parsed.header
    layer = int(rng.integers(len(parsed.payloads))) if parsed.payloads else None
    payload = parsed.payloads[layer] if layer is not None else b""
    kind = rng.integers(4)
    if kind == 0:  # a huge declared size, mostly past the pixel limit
        side = int(rng.choice([4096, 8193, 13377, 65536, container.MAX_SIDE]))
        if side * side > 1 << 32:  # keep the count array of the lie small: 2^20 x 1 ... 2^20 x 4096
            side_h = int(rng.integers(1, 4097))
        else:
            side_h = int(rng.integers(1, side + 1))
        header = dataclasses.replace(header, width=side, height=side_h)
        tiles = header.tile_grid.count
        header = dataclasses.replace(header, token_counts=np.full(tiles, int(header.token_counts.max(initial=0))))
    elif kind == 1:  # more tokens than the payload holds
        header = dataclasses.replace(header, token_counts=header.token_counts + int(rng.integers(1, 4)))
    elif kind == 2:  # the payload cut short
        payload = payload[: int(rng.integers(0, max(len(payload), 1)))]
    else:  # an alpha chunk of a plane far larger than its bytes, filtered, maybe of the wrong size
        side = int(rng.choice([1, 64, 1024, 2048]))
        plane = zlib.compress(bytes(rng.integers(0, 3, side, dtype=np.uint8)) * side, 9)
        alpha = (metadata.ALPHA, bytes([int(rng.integers(3)), int(rng.choice([1, 5, 255]))]) + plane)
        chunks = (*(c for c in header.chunks if c[0] != metadata.ALPHA), alpha)
        if rng.random() < 0.7:
            header = dataclasses.replace(header, width=side, height=side, token_counts=np.zeros(0, dtype=np.int64))
            header = dataclasses.replace(header, token_counts=np.zeros(header.tile_grid.count, dtype=np.int64))
        header = dataclasses.replace(header, chunks=chunks)
    if header.version == 1:
        return container.pack(header, payload)
    payloads = list(parsed.payloads)
    if layer is not None:
        payloads[layer] = payload
    longest = int(header.token_counts.max(initial=0))
    ends = tuple(e for e in header.layers if e < longest) + ((longest,) if longest else ())
    payloads = (payloads + [b""] * len(ends))[: len(ends)]
    return container.pack_layers(dataclasses.replace(header, layers=ends), payloads)


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """Bit flips, truncation, extension, splices, extreme varints and well-formed lies (:func:`hostile`);
    the CRC is refreshed half the time."""
    if rng.random() < 0.15:
        lie = hostile(data, rng)
        if lie is not None:
            return lie
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
    if data[3] == 1:  # version 1: the CRC-32 at the end is refreshed half the time
        return _with_crc(bytes(body)) if rng.random() < 0.5 else bytes(body) + data[-4:]
    return bytes(body) + data[-4:]  # version 2: its checks stay as they were (hostile() redoes them)


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
    # Format version 1 beside the default version 2, and a fine ladder of layers.
    files += [vtcodec.compress(im, tokens=8, model=tiny_model, layout=Layout(1)) for im in images[:2]]
    files.append(vtcodec.compress(images[1], tokens=8, model=tiny_model, layout=Layout(2, (1, 2, 3, 5))))
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


def with_metadata(data: bytes, key: str, change) -> bytes:
    """A safetensors file with the JSON string under ``__metadata__[key]`` replaced by ``change(old value)``."""
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    header["__metadata__"][key] = json.dumps(change(json.loads(header["__metadata__"][key])))
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    return len(encoded).to_bytes(8, "little") + encoded + data[8 + length :]


def inflate_architecture(data: bytes, key: str, rng: np.random.Generator) -> bytes:
    """A model or decoder file whose JSON under ``__metadata__[key]`` declares other (often huge) sizes."""
    return with_metadata(data, key, lambda spec: _inflated(spec, rng))


def _inflated(spec: dict, rng: np.random.Generator) -> dict:
    target = spec["architecture"] if "token_space" in spec else spec  # a decoder file's, or a model's config
    choices = {
        "channels": lambda: [int(rng.choice([8, 64, 4096, 10**6]))] * int(rng.integers(1, 10)),
        "decoder_blocks": lambda: [int(rng.choice([0, 1, 64, 10**4]))] * 4,
        "decoder_hidden": lambda: [int(rng.choice([1, 8, 4096, 10**6]))] * 4,
        "decoder_attention": lambda: int(rng.choice([0, 4, 64, 10**4])),
        "tile_size": lambda: int(rng.choice([16, 32, 1024, 1 << 20])),
        "max_tokens": lambda: int(rng.choice([8, 512, 1 << 20])),
        "grid_channels": lambda: int(rng.choice([1, 4096, 10**7])),
    }
    name = str(rng.choice(list(choices)))
    target[name] = choices[name]()
    return spec


def test_inflated_architectures_are_refused_or_load(tiny_model, tiny_model_path):
    """Model and decoder files that declare other networks: each loads (it fits) or is one InputError."""
    from vtcodec.decoders.files import DECODER_KEY, parse_decoder, serialize_decoder
    from vtcodec.registry import CONFIG_KEY
    from vtcodec.zoo import parse_model

    rng = np.random.default_rng(38)
    model_file = tiny_model_path.read_bytes()
    decoder_file = serialize_decoder(tiny_model.model, "grid", tiny_model.model_id, "grid", 0)
    refused = 0
    for case in range(200):
        try:
            if case % 2:
                parse_model(inflate_architecture(model_file, CONFIG_KEY, rng))
            else:
                parse_decoder(inflate_architecture(decoder_file, DECODER_KEY, rng), tiny_model)
        except (InputError, UnknownModelError):
            refused += 1
    assert refused > 150
