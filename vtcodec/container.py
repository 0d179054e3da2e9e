"""The ``.vtk`` container, versions 1 and 2 (byte layouts in ``format-spec/vtk-v1.md``, ``vtk-v2.md``).

magic "VTK" | version u8 | flags u8 | model id (8 bytes)
| width varint | height varint | tile_size/16 varint
| token counts (one varint if uniform, else one per tile)
| [chunks, if flag bit 3: count varint, then per chunk: tag (4 ASCII bytes) | length varint | data]

then, version 1: payload length varint | payload | CRC-32 (u32 LE) of everything before it;
version 2: layer count varint | per layer: its end (a token position) varint, its payload's length
varint | CRC-32 of the header, then per layer: payload | CRC-16 of the payload. The header says
where every layer ends, so a version 2 file cut after its header holds the layers that are complete
(:func:`parse` with ``partial``), and damage anywhere is told apart from a cut.
"""

from __future__ import annotations

import binascii
import enum
import struct
import sys
import zlib
from dataclasses import dataclass, replace

import numpy as np

from vtcodec.errors import FormatError, InputError, UsageError
from vtcodec.tile_grid import TileGrid


class Coder(enum.IntEnum):
    """How the payload is coded (``vtcodec.entropy``); stored in the header flags."""

    RAW = 0
    RANGE = 1
    CONTEXT = 2


MAGIC = b"VTK"
FORMAT_VERSION = 2  # what vtcodec writes unless asked for 1
FORMAT_VERSIONS = (1, 2)  # what it reads
MAX_LAYERS = 64
LAYER_CHECK_BYTES = 2  # a CRC-16 after each version 2 layer
MODEL_ID_BYTES = 8
FLAG_RANGE_CODER = 0x01
FLAG_UNIFORM_COUNTS = 0x02
FLAG_CONTEXT_PRIOR = 0x04  # with FLAG_RANGE_CODER: the digit-context prior (coder 2)
FLAG_CHUNKS = 0x08  # optional chunks (colour profile, metadata, alpha) follow the token counts
_KNOWN_FLAGS = FLAG_RANGE_CODER | FLAG_UNIFORM_COUNTS | FLAG_CONTEXT_PRIOR | FLAG_CHUNKS
_CODER_FLAGS = {
    Coder.RAW: 0,
    Coder.RANGE: FLAG_RANGE_CODER,
    Coder.CONTEXT: FLAG_RANGE_CODER | FLAG_CONTEXT_PRIOR,
}
MAX_SIDE = 1 << 20
MAX_VARINT_BYTES = 10
MAX_TOKENS = 1 << 16  # per tile; any model's K is far below
MAX_CHUNKS = 16
MAX_CHUNK_BYTES = 1 << 26  # 64 MiB; each kind of chunk has its own, tighter limit (vtcodec.metadata)
MAX_PAYLOAD_BYTES = 1 << 40  # what a payload-length varint may say; a shorter file is "truncated"
TAG_BYTES = 4
_TAG_CHARACTERS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ ")

Chunk = tuple[bytes, bytes]  # (tag, data)


def layer_check(payload: bytes) -> int:
    """A layer's check: CRC-16/XMODEM (polynomial 0x1021, initial 0) of its payload."""
    return binascii.crc_hqx(payload, 0)


def is_critical(tag: bytes) -> bool:
    """A chunk whose tag starts with an upper-case letter must be understood; others may be skipped."""
    return 65 <= tag[0] <= 90


def check_tag(tag: bytes) -> None:
    if len(tag) != TAG_BYTES or not set(tag) <= _TAG_CHARACTERS or tag[0] == 32:
        raise ValueError(f"a chunk tag is 4 ASCII letters or spaces, starting with a letter; got {tag!r}")


DEFAULT_MAX_PIXELS = 1 << 26  # 67.1 million, 8192 x 8192: about a minute of decoding on 2 CPU cores


def pixel_limit() -> int | None:
    """The largest image vtcodec encodes or decodes: ``vtcodec.MAX_PIXELS`` (None: no limit).

    Like Pillow's ``Image.MAX_IMAGE_PIXELS``: a file that declares more pixels is refused before
    anything is allocated, since a few bytes can declare a picture that takes minutes and
    gigabytes to render. The CLI's ``--max-pixels`` sets it.
    """
    package = sys.modules.get("vtcodec")
    return getattr(package, "MAX_PIXELS", DEFAULT_MAX_PIXELS)


def too_many_pixels(width: int, height: int) -> str | None:
    """Why an image of ``width x height`` is refused under :func:`pixel_limit`, or None."""
    limit = pixel_limit()
    if limit is None or width * height <= limit:
        return None
    return f"{width}x{height} is more than {limit} pixels (raise the limit with --max-pixels or vtcodec.MAX_PIXELS)"


@dataclass(frozen=True)
class Header:
    """Everything the container says about the coded image except the payload."""

    model_id: bytes
    width: int
    height: int
    tile_size: int
    token_counts: np.ndarray
    coder: Coder
    version: int = 1
    chunks: tuple[Chunk, ...] = ()  # in file order; tags unique
    layers: tuple[int, ...] = ()  # version 2: each layer's end, a token position (exclusive), increasing

    def chunk(self, tag: bytes) -> bytes | None:
        """The data of the chunk ``tag``, or None."""
        return next((data for t, data in self.chunks if t == tag), None)

    @property
    def tile_grid(self) -> TileGrid:
        """The image's tile layout."""
        return TileGrid(self.width, self.height, self.tile_size)

    @property
    def grid(self) -> tuple[int, int]:
        """(columns, rows) of tiles."""
        grid = self.tile_grid
        return grid.cols, grid.rows


def write_varint(value: int) -> bytes:
    """Unsigned LEB128."""
    if value < 0:
        raise ValueError("varints are unsigned")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class _Reader:
    def __init__(self, data: bytes, end: int) -> None:
        self.data = data
        self.pos = 0
        self.end = end

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise FormatError(f"truncated: the file ends inside its header, after {self.end} bytes")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def varint(self, limit: int) -> int:
        """Read a canonical unsigned LEB128 value that must not exceed ``limit``."""
        value = self._varint()
        if value > limit:
            raise FormatError("corrupt file: value out of range")
        return value

    def _varint(self) -> int:
        value = 0
        for i in range(MAX_VARINT_BYTES):
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                if byte == 0 and i > 0:
                    raise FormatError("corrupt file: non-canonical varint")
                return value
        raise FormatError("corrupt file: varint too long")


def _pack_header(header: Header) -> bytearray:
    if len(header.model_id) != MODEL_ID_BYTES:
        raise ValueError("model id must be 8 bytes")
    counts = np.asarray(header.token_counts, dtype=np.int64)
    if counts.shape != (header.tile_grid.count,):
        raise ValueError("one token count per tile is required")
    uniform = bool(np.all(counts == counts[0]))
    flags = _CODER_FLAGS[Coder(header.coder)] | (FLAG_UNIFORM_COUNTS if uniform else 0)
    flags |= FLAG_CHUNKS if header.chunks else 0
    if header.tile_size % 16:
        raise ValueError("tile size must be a multiple of 16")
    out = bytearray(MAGIC)
    out += bytes([header.version, flags]) + header.model_id
    out += write_varint(header.width) + write_varint(header.height) + write_varint(header.tile_size // 16)
    for count in counts[:1] if uniform else counts:
        out += write_varint(int(count))
    if header.chunks:
        out += _pack_chunks(header.chunks)
    return out


def pack(header: Header, payload: bytes) -> bytes:
    """Serialize a version 1 header and payload into a complete ``.vtk`` byte string."""
    if header.version != 1:
        raise ValueError("pack writes version 1; version 2 is pack_layers")
    out = _pack_header(header)
    out += write_varint(len(payload)) + payload
    out += struct.pack("<I", zlib.crc32(out))
    return bytes(out)


def layer_ends(counts: np.ndarray, ladder: tuple[int, ...]) -> tuple[int, ...]:
    """The layers of a file whose tiles hold ``counts`` tokens: the ladder's ends below the
    longest count, then the longest count (no layer for a file without tokens)."""
    longest = int(np.max(counts, initial=0))
    if longest == 0:
        return ()
    return (*(end for end in sorted(set(ladder)) if 0 < end < longest), longest)


def check_layers(layers: tuple[int, ...], counts: np.ndarray) -> None:
    """Raise ValueError unless ``layers`` increase from 1 and end at the longest of ``counts``."""
    if len(layers) > MAX_LAYERS:
        raise ValueError(f"at most {MAX_LAYERS} layers")
    starts = (0, *layers[:-1]) if layers else ()
    if any(end <= start for start, end in zip(starts, layers, strict=True)):
        raise ValueError("layer ends must increase from 1")
    if (layers[-1] if layers else 0) != int(np.max(counts, initial=0)):
        raise ValueError("the last layer must end at the longest token count")


def pack_layers(header: Header, payloads: list[bytes] | tuple[bytes, ...]) -> bytes:
    """Serialize a version 2 header and its layers' payloads into a ``.vtk`` byte string."""
    if header.version != 2:
        raise ValueError("pack_layers writes version 2")
    check_layers(header.layers, header.token_counts)
    if len(payloads) != len(header.layers):
        raise ValueError("one payload per layer is required")
    out = _pack_header(header)
    out += write_varint(len(header.layers))
    for end, payload in zip(header.layers, payloads, strict=True):
        out += write_varint(end) + write_varint(len(payload))
    out += struct.pack("<I", zlib.crc32(out))
    for payload in payloads:
        out += payload + struct.pack("<H", layer_check(payload))
    return bytes(out)


def _pack_chunks(chunks: tuple[Chunk, ...]) -> bytes:
    if len(chunks) > MAX_CHUNKS:
        raise ValueError(f"at most {MAX_CHUNKS} chunks")
    if len({tag for tag, _ in chunks}) != len(chunks):
        raise ValueError("chunk tags must be unique")
    out = bytearray(write_varint(len(chunks)))
    for tag, data in chunks:
        check_tag(tag)
        if len(data) > MAX_CHUNK_BYTES:
            raise ValueError(f"a chunk holds at most {MAX_CHUNK_BYTES} bytes")
        out += tag + write_varint(len(data)) + data
    return bytes(out)


def _read_chunks(reader: _Reader) -> tuple[Chunk, ...]:
    count = reader.varint(MAX_CHUNKS)
    if count == 0:
        raise FormatError("corrupt file: empty chunk list")
    chunks: list[Chunk] = []
    for _ in range(count):
        tag = reader.take(TAG_BYTES)
        try:
            check_tag(tag)
        except ValueError:
            raise FormatError("corrupt file: bad chunk tag") from None
        if any(tag == t for t, _ in chunks):
            raise FormatError(f"corrupt file: chunk {tag.decode()!r} twice")
        length = reader.varint(MAX_CHUNK_BYTES)
        chunks.append((tag, reader.take(length)))
    return tuple(chunks)


@dataclass(frozen=True)
class Parsed:
    """A parsed file: its header and the payloads of its complete layers (version 1: one)."""

    header: Header
    payloads: tuple[bytes, ...]
    layer_offsets: tuple[int, ...] = ()  # version 2: the byte offset where each layer ends

    @property
    def complete(self) -> bool:
        """Whether every layer the header lists is here."""
        return len(self.payloads) == max(len(self.header.layers), 1 if self.header.version == 1 else 0)


def assemble(header: Header, payloads: list[bytes] | tuple[bytes, ...]) -> bytes:
    """A file of either version from a header and its payloads (version 1: one)."""
    if header.version == 1:
        (payload,) = payloads
        return pack(header, payload)
    return pack_layers(header, payloads)


def unpack(data: bytes, max_tokens: int | None = None) -> tuple[Header, bytes]:
    """Parse and verify a complete ``.vtk`` byte string; raise :class:`FormatError` on any defect.

    Returns the header and the payload (version 2: the layers' payloads joined, each a
    segment of its own; :func:`parse` keeps them apart and reads cut files).
    """
    parsed = parse(data, max_tokens)
    return parsed.header, b"".join(parsed.payloads)


def parse(data: bytes, max_tokens: int | None = None, partial: bool = False) -> Parsed:
    """Parse and verify ``.vtk`` bytes; raise :class:`FormatError` on any defect.

    ``max_tokens`` (the model's K), when given, bounds the per-tile counts. With ``partial``,
    a version 2 file cut after its header gives the layers that are complete; a damaged
    complete layer is still corrupt.
    """
    data = bytes(data)
    if len(data) < len(MAGIC) + 2 or data[: len(MAGIC)] != MAGIC:
        raise FormatError("not a .vtk file (bad magic)")
    version = data[len(MAGIC)]
    if version not in FORMAT_VERSIONS:
        known = " and ".join(map(str, FORMAT_VERSIONS))
        raise FormatError(f"unsupported .vtk format version {version} (this vtcodec reads versions {known})")
    reader = _Reader(data, len(data))
    reader.take(len(MAGIC) + 1)
    flags = reader.take(1)[0]
    if flags & ~_KNOWN_FLAGS:
        raise FormatError("corrupt file: unknown flags")
    coder_flags = flags & (FLAG_RANGE_CODER | FLAG_CONTEXT_PRIOR)
    coders = {bits: coder for coder, bits in _CODER_FLAGS.items()}
    if coder_flags not in coders:
        raise FormatError("corrupt file: unknown coder")
    model_id = reader.take(MODEL_ID_BYTES)
    width, height = reader.varint(MAX_SIDE), reader.varint(MAX_SIDE)
    tile_size = reader.varint(MAX_SIDE // 16) * 16
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE and tile_size > 0):
        raise FormatError("corrupt file: bad image or tile size")
    refused = too_many_pixels(width, height)
    if refused is not None:
        raise FormatError(f"refusing to decode: {refused}")
    tiles = TileGrid(width, height, tile_size).count
    if flags & FLAG_UNIFORM_COUNTS:
        counts = np.full(tiles, reader.varint(MAX_TOKENS), dtype=np.int64)
    else:
        if tiles > len(data) - reader.pos:  # every count takes at least one byte
            raise FormatError(f"truncated: the file ends inside its header, after {len(data)} bytes")
        counts = np.array([reader.varint(MAX_TOKENS) for _ in range(tiles)], dtype=np.int64)
    if max_tokens is not None and counts.size and counts.max() > max_tokens:
        raise FormatError(f"corrupt file: more than {max_tokens} tokens in a tile")
    chunks = _read_chunks(reader) if flags & FLAG_CHUNKS else ()
    if version == 1:
        header = Header(model_id, width, height, tile_size, counts, coders[coder_flags], version, chunks)
        parsed = Parsed(header, (_read_v1_payload(data, reader),))
    else:
        pairs = [
            (reader.varint(MAX_TOKENS), reader.varint(MAX_PAYLOAD_BYTES)) for _ in range(reader.varint(MAX_LAYERS))
        ]
        layers, lengths = tuple(end for end, _ in pairs), tuple(length for _, length in pairs)
        try:
            check_layers(layers, counts)
        except ValueError:
            raise FormatError("corrupt file: bad layer ends") from None
        (stored_crc,) = struct.unpack("<I", reader.take(4))
        if zlib.crc32(data[: reader.pos - 4]) != stored_crc:
            raise FormatError("corrupt (header checksum mismatch)")
        header = Header(model_id, width, height, tile_size, counts, coders[coder_flags], version, chunks, layers)
        parsed = _read_layers(data, reader.pos, header, lengths, partial)
    unknown = [tag.decode() for tag, _ in chunks if is_critical(tag) and tag not in KNOWN_CRITICAL]
    if unknown:
        raise FormatError(f"the file needs chunk {unknown[0]!r}, which this vtcodec does not know (a newer version?)")
    return parsed


def _read_v1_payload(data: bytes, reader: _Reader) -> bytes:
    payload_length = reader.varint(MAX_PAYLOAD_BYTES)
    body_end = reader.pos + payload_length
    if body_end + 4 > len(data):
        raise FormatError(f"truncated: {len(data)} of {body_end + 4} bytes")
    if body_end + 4 < len(data):
        extra = len(data) - body_end - 4
        raise FormatError(f"corrupt file: {extra} byte{'s' * (extra > 1)} past its end ({body_end + 4} bytes)")
    (stored_crc,) = struct.unpack("<I", data[body_end:])
    if zlib.crc32(data[:body_end]) != stored_crc:
        raise FormatError("corrupt (checksum mismatch)")
    return data[reader.pos : body_end]


def _read_layers(data: bytes, pos: int, header: Header, lengths: tuple[int, ...], partial: bool) -> Parsed:
    payloads: list[bytes] = []
    offsets: list[int] = []
    for index, length in enumerate(lengths):
        end = pos + length + LAYER_CHECK_BYTES
        if end > len(data):
            if partial:
                return Parsed(header, tuple(payloads), tuple(offsets))
            raise FormatError(
                f"truncated: {len(data)} of {pos + sum(lengths[index:]) + 2 * (len(lengths) - index)} bytes"
            )
        payload = data[pos : end - LAYER_CHECK_BYTES]
        (stored,) = struct.unpack("<H", data[end - LAYER_CHECK_BYTES : end])
        if layer_check(payload) != stored:
            raise FormatError(f"corrupt (checksum mismatch in layer {index + 1})")
        payloads.append(payload)
        offsets.append(end)
        pos = end
    if pos < len(data):
        extra = len(data) - pos
        raise FormatError(f"corrupt file: {extra} byte{'s' * (extra > 1)} past its end ({pos} bytes)")
    return Parsed(header, tuple(payloads), tuple(offsets))


def cut(parsed: Parsed, layers: int) -> bytes:
    """The file of the first ``layers`` complete layers: token counts capped at their end, the
    layer list shortened, the header's check recomputed, the layers' bytes copied unchanged
    (no model, no entropy coding). It decodes to the same tokens as the full file's prefix."""
    header = parsed.header
    if header.version != 2:
        raise ValueError("only version 2 files are cut at layers")
    if not 0 <= layers <= len(parsed.payloads):
        raise ValueError(f"the file holds {len(parsed.payloads)} complete layers, not {layers}")
    limit = header.layers[layers - 1] if layers else 0
    counts = np.minimum(header.token_counts, limit)
    shorter = replace(header, token_counts=counts, layers=header.layers[:layers])
    return pack_layers(shorter, parsed.payloads[:layers])


def cut_to_fit(parsed: Parsed, tokens: int | None = None, max_bytes: int | None = None) -> bytes:
    """The file of ``parsed``'s first layers: those that end at ``tokens`` or before, or as many as
    fit in ``max_bytes`` (:func:`cut`; no model needed)."""
    if parsed.header.version != 2:
        raise UsageError("a format version 1 file has no layers to cut at: truncate it without --cut")
    held = len(parsed.payloads)
    if tokens is not None:
        return cut(parsed, sum(end <= tokens for end in parsed.header.layers[:held]))
    if max_bytes is None:
        raise UsageError("give tokens or bytes")
    files = [cut(parsed, k) for k in range(held + 1)]
    fitting = [f for f in files if len(f) <= max_bytes]
    if not fitting:
        raise InputError(f"a budget of {max_bytes} bytes is below the smallest possible file ({len(files[0])} bytes)")
    return fitting[-1]


KNOWN_CRITICAL: frozenset[bytes] = frozenset()  # every chunk this version writes may be skipped
