"""What travels beside the tokens: colour profile, EXIF, XMP, the alpha plane and the tone.

Each is an optional container chunk (``format-spec/vtk-v1.md``, "Chunks"):

- ``iccp``, ``exif``, ``xmp `` hold a method byte (0: stored, 1: zlib) and the
  item's bytes, which come back exactly. EXIF is the TIFF stream (a JPEG's
  ``Exif\\0\\0`` prefix is not part of it), with its orientation set to 1 when the
  rotation was applied to the pixels.
- ``alph`` holds the alpha plane as levels of a step: a filter byte (0: none, 1: each
  level minus its left neighbour, 2: minus the one above, mod 256), the step (1: exact;
  5: every alpha within 2/255, 0 and 255 exact) and the zlib stream of the filtered
  ``height x width`` levels, rows top to bottom; alpha = level x step.
- ``tone`` holds a flags byte (bit 0: grey, the image decodes to one channel; bit 1:
  flat, every pixel is the mean; bits 2-7 zero) and the source's per-channel mean,
  rounded: one byte when grey, else three. The decoded pixels are shifted so that
  each channel's mean is this one (:func:`apply_tone`).

:class:`Extras` is the decoded form; :func:`to_chunks` and :func:`from_chunks`
convert, and check every limit, so that a corrupt chunk is a :class:`FormatError`.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from vtcodec.errors import FormatError, InputError, UsageError

ICC, EXIF, XMP, ALPHA, TONE = b"iccp", b"exif", b"xmp ", b"alph", b"tone"
METADATA_KINDS = {"icc": ICC, "exif": EXIF, "xmp": XMP}
DEFAULT_METADATA = "none"  # profiles are converted to sRGB instead (vtcodec.imageio)
MAX_METADATA_BYTES = 1 << 24  # 16 MiB per item, stored or decompressed
EXIF_PREFIX = b"Exif\x00\x00"
ORIENTATION_TAG = 0x0112
_STORED, _ZLIB = 0, 1
_FILTER_NONE, _FILTER_LEFT, _FILTER_UP = 0, 1, 2
ALPHA_STEP = 5  # alpha="keep": levels of 5, so every alpha is within 2/255 and 0 and 255 stay exact


_GREY, _FLAT = 0x01, 0x02


@dataclass(frozen=True)
class Tone:
    """What the encoder knows of the image's colours that the tokens do not say exactly."""

    grey: bool  # every pixel has R == G == B: decode to mode L
    flat: bool  # every pixel is ``mean``: no tokens are needed
    mean: tuple[int, ...]  # per channel, rounded; one value when grey


def tone_of(pixels: np.ndarray, small: bool) -> Tone | None:
    """The tone worth storing for ``pixels`` (height, width, 3), or None.

    Grey and flat images always carry it; other images only when ``small``. Measured with
    ``benchmarks/tone.py`` (``results/tone.json``, 64 tokens): the exact mean, a chunk of
    about 10 bytes, lifts centre crops of held-out photos by 1.5 dB at 16x16 and 0.5 dB at
    32x32, more than 10 bytes of tokens buy there, but only 0.17 dB at 64x64 and
    0.01-0.08 dB on whole photos, less than the tokens would.
    """
    if pixels.size == 0:
        return None
    values = pixels.reshape(-1, 3)
    grey = np.array_equal(values[:, 0], values[:, 1]) and np.array_equal(values[:, 1], values[:, 2])
    flat = bool((values.min(axis=0) == values.max(axis=0)).all())
    if not (grey or flat or small):
        return None
    mean = (values[:, :1] if grey else values).mean(axis=0, dtype=np.float64)
    return Tone(grey, flat, tuple(int(v) for v in np.round(mean)))


def apply_tone(pixels: np.ndarray, tone: Tone | None) -> np.ndarray:
    """Decoded RGB ``pixels`` with ``tone`` applied: (height, width) uint8 when grey, else (height, width, 3)."""
    if tone is None:
        return pixels
    channels = pixels.astype(np.float64).mean(axis=2, keepdims=True) if tone.grey else pixels.astype(np.float64)
    target = np.array(tone.mean, dtype=np.float64)
    if tone.flat:
        out = np.broadcast_to(target, channels.shape)
    else:
        out = channels + (target - channels.reshape(-1, channels.shape[2]).mean(axis=0))
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    return out[..., 0] if tone.grey else out


def _pack_tone(tone: Tone) -> bytes:
    return bytes([(_GREY if tone.grey else 0) | (_FLAT if tone.flat else 0), *tone.mean])


def _unpack_tone(data: bytes) -> Tone:
    if not data or data[0] & ~(_GREY | _FLAT) or len(data) != (2 if data[0] & _GREY else 4):
        raise FormatError("corrupt file: bad tone chunk")
    return Tone(bool(data[0] & _GREY), bool(data[0] & _FLAT), tuple(data[1:]))


@dataclass(frozen=True)
class Extras:
    """A coded image's colour profile, metadata and alpha plane (each None when absent)."""

    icc: bytes | None = None
    exif: bytes | None = None  # the TIFF stream, without the "Exif\0\0" prefix
    xmp: bytes | None = None
    alpha: np.ndarray | None = None  # (height, width) uint8
    tone: Tone | None = None

    def items(self) -> dict[str, int]:
        """What the image carries and the bytes of each item before compression."""
        out = {name: len(value) for name, value in (("icc", self.icc), ("exif", self.exif), ("xmp", self.xmp)) if value}
        if self.alpha is not None:
            out["alpha"] = int(self.alpha.size)
        return out


def parse_metadata(spec: str | Iterable[str]) -> frozenset[str]:
    """``all``, ``none`` or a comma list of ``icc``, ``exif``, ``xmp`` -> the set of kinds to keep."""
    names = [s.strip().lower() for s in (spec.split(",") if isinstance(spec, str) else spec)]
    names = [n for n in names if n]
    if names == ["all"]:
        return frozenset(METADATA_KINDS)
    if names == ["none"] or not names:
        return frozenset()
    unknown = [n for n in names if n not in METADATA_KINDS]
    if unknown:
        raise UsageError(f"unknown metadata {unknown[0]!r} (use all, none, or a comma list of icc, exif, xmp)")
    return frozenset(names)


def _pack_item(data: bytes) -> bytes:
    if len(data) > MAX_METADATA_BYTES:
        raise InputError(f"metadata item of {len(data)} bytes; at most {MAX_METADATA_BYTES} are kept")
    packed = zlib.compress(data, 9)
    return bytes([_ZLIB]) + packed if len(packed) < len(data) else bytes([_STORED]) + data


def _inflate(data: bytes, size: int | None, limit: int, what: str) -> bytes:
    """zlib-decompress ``data`` to at most ``limit`` bytes (exactly ``size`` if given)."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error:
        raise FormatError(f"corrupt file: bad {what} chunk") from None
    if len(out) > limit or not inflater.eof or inflater.unused_data or (size is not None and len(out) != size):
        raise FormatError(f"corrupt file: bad {what} chunk")
    return out


def _unpack_item(data: bytes, what: str) -> bytes:
    if not data:
        raise FormatError(f"corrupt file: empty {what} chunk")
    if data[0] == _STORED:
        if len(data) - 1 > MAX_METADATA_BYTES:
            raise FormatError(f"corrupt file: {what} chunk over {MAX_METADATA_BYTES} bytes")
        return data[1:]
    if data[0] == _ZLIB:
        return _inflate(data[1:], None, MAX_METADATA_BYTES, what)
    raise FormatError(f"corrupt file: unknown {what} chunk method {data[0]}")


def quantize_alpha(alpha: np.ndarray, step: int = ALPHA_STEP) -> np.ndarray:
    """Alpha rounded to multiples of ``step`` (within step // 2 of each value; 0 and 255 kept when 255 % step == 0)."""
    return (np.round(alpha.astype(np.float64) / step) * step).astype(np.uint8)


def _pack_alpha(alpha: np.ndarray) -> bytes:
    plane = np.ascontiguousarray(alpha, dtype=np.uint8)
    step = ALPHA_STEP if not (plane % ALPHA_STEP).any() else 1
    levels = plane // step
    left, up = levels.copy(), levels.copy()
    left[:, 1:] -= levels[:, :-1]  # uint8 arithmetic wraps mod 256
    up[1:] -= levels[:-1]
    filtered = ((_FILTER_NONE, levels), (_FILTER_LEFT, left), (_FILTER_UP, up))
    return min((bytes([f, step]) + zlib.compress(p.tobytes(), 9) for f, p in filtered), key=len)


def _unpack_alpha(data: bytes, width: int, height: int) -> np.ndarray:
    if len(data) < 2 or data[0] not in (_FILTER_NONE, _FILTER_LEFT, _FILTER_UP) or not 1 <= data[1] <= 255:
        raise FormatError("corrupt file: bad alpha chunk")
    levels = bytearray(_inflate(data[2:], width * height, width * height, "alpha"))  # the plane, once
    plane = np.frombuffer(levels, dtype=np.uint8).reshape(height, width)
    if data[0] != _FILTER_NONE:  # a running sum mod 256 undoes the filter, in place (uint8 wraps)
        np.cumsum(plane, axis=1 if data[0] == _FILTER_LEFT else 0, dtype=np.uint8, out=plane)
    step = data[1]
    if plane.size and int(plane.max()) * step > 255:
        raise FormatError("corrupt file: alpha out of range")
    plane *= np.uint8(step)
    return plane


def item_sizes(chunks: Iterable[tuple[bytes, bytes]], width: int, height: int) -> dict[str, int]:
    """What :meth:`Extras.items` gives for these chunks; the metadata items are checked, the alpha
    plane is not inflated (its size is the image's)."""
    kept = [(tag, data) for tag, data in chunks if tag != ALPHA]
    sizes = from_chunks(kept, width, height).items()
    if any(tag == ALPHA for tag, _ in chunks):
        sizes["alpha"] = width * height
    return sizes


def read_tone(chunks: Iterable[tuple[bytes, bytes]]) -> Tone | None:
    """The tone of a file's chunks alone (nothing else is inflated); :class:`FormatError` if corrupt."""
    return from_chunks([c for c in chunks if c[0] == TONE], 0, 0).tone


@dataclass(frozen=True)
class ChunkKind:
    """One kind of chunk: its tag, the :class:`Extras` field it holds, how ``vtcodec info`` names it,
    and how its value becomes the chunk's data and back (``unpack(data, width, height)``)."""

    tag: bytes
    item: str
    label: str
    pack: Callable[[Any], bytes]
    unpack: Callable[[bytes, int, int], Any]


# Every chunk this version writes, in the order it writes them. A new kind is one entry here, a field
# of Extras, and its line in format-spec/vtk-v1.md ("Chunks").
CHUNK_KINDS = (
    ChunkKind(ICC, "icc", "colour profile", _pack_item, lambda d, w, h: _unpack_item(d, "colour profile")),
    ChunkKind(EXIF, "exif", "EXIF", _pack_item, lambda d, w, h: _unpack_item(d, "EXIF")),
    ChunkKind(XMP, "xmp", "XMP", _pack_item, lambda d, w, h: _unpack_item(d, "XMP")),
    ChunkKind(ALPHA, "alpha", "alpha plane", _pack_alpha, _unpack_alpha),
    ChunkKind(TONE, "tone", "tone", _pack_tone, lambda d, w, h: _unpack_tone(d)),
)
KIND_OF_TAG = {kind.tag: kind for kind in CHUNK_KINDS}


def to_chunks(extras: Extras) -> tuple[tuple[bytes, bytes], ...]:
    """The container chunks of ``extras``, in :data:`CHUNK_KINDS` order; empty items are left out."""
    values = ((kind, getattr(extras, kind.item)) for kind in CHUNK_KINDS)
    return tuple((kind.tag, kind.pack(v)) for kind, v in values if v is not None)


def from_chunks(chunks: Iterable[tuple[bytes, bytes]], width: int, height: int) -> Extras:
    """The extras of a file's chunks (unknown ones skipped); :class:`FormatError` if one is corrupt."""
    items: dict[bytes, bytes] = dict(chunks)
    fields = {k.item: k.unpack(items[k.tag], width, height) for k in CHUNK_KINDS if k.tag in items}
    return Extras(**fields)


def strip_exif_prefix(exif: bytes) -> bytes:
    return exif[len(EXIF_PREFIX) :] if exif.startswith(EXIF_PREFIX) else exif


def reset_orientation(exif: bytes) -> bytes:
    """``exif`` (a TIFF stream) with its orientation tag set to 1, every other byte unchanged.

    Returns ``exif`` unchanged if it has no orientation tag; raises ValueError if it is no TIFF stream.
    """
    if exif[:4] == b"II*\x00":
        order = "<"
    elif exif[:4] == b"MM\x00*":
        order = ">"
    else:
        raise ValueError("not a TIFF stream")
    (ifd,) = struct.unpack(order + "I", exif[4:8])
    if ifd + 2 > len(exif):
        raise ValueError("IFD0 out of range")
    (count,) = struct.unpack(order + "H", exif[ifd : ifd + 2])
    for i in range(count):
        entry = ifd + 2 + 12 * i
        if entry + 12 > len(exif):
            raise ValueError("IFD0 entry out of range")
        tag, kind, n = struct.unpack(order + "HHI", exif[entry : entry + 8])
        if tag == ORIENTATION_TAG and kind == 3 and n == 1:  # SHORT, one value, stored in the entry
            out = bytearray(exif)
            out[entry + 8 : entry + 10] = struct.pack(order + "H", 1)
            return bytes(out)
    return exif
