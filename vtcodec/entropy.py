"""Entropy coding of token streams: constriction's range coder under the prior, or raw bit-packing.

A stream is the concatenation of every tile's token prefix, in tile order. The
position of each token inside its tile selects its row of the prior.
"""

from __future__ import annotations

import enum

import constriction
import numpy as np

from vtcodec.errors import FormatError
from vtcodec.prior import TokenPrior


class Coder(enum.IntEnum):
    """How the payload is coded; stored in the header flags."""

    RAW = 0
    RANGE = 1


def stream_order(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(tile, position) of every token in stream order: position-major, then tile order.

    Token 0 of every tile comes first, then token 1 of every tile that has one,
    and so on, so that any prefix of the stream is a coarser picture of the whole image.
    """
    counts = np.asarray(counts, dtype=np.int64)
    longest = int(counts.max()) if counts.size else 0
    mask = np.arange(longest)[:, None] < counts[None, :]
    positions, tiles = np.nonzero(mask)
    return tiles, positions


def raw_bits_per_token(codebook_size: int) -> int:
    return max(1, int(codebook_size - 1).bit_length())


def pack_raw(tokens: np.ndarray, codebook_size: int) -> bytes:
    """Fixed-width big-endian bit-packing, zero-padded to a byte."""
    width = raw_bits_per_token(codebook_size)
    tokens = np.asarray(tokens, dtype=np.uint32)
    bits = ((tokens[:, None] >> np.arange(width - 1, -1, -1, dtype=np.uint32)) & 1).astype(np.uint8)
    return np.packbits(bits.reshape(-1)).tobytes()


def unpack_raw(data: bytes, count: int, codebook_size: int) -> np.ndarray:
    width = raw_bits_per_token(codebook_size)
    if len(data) != -(-count * width // 8):
        raise FormatError("corrupt file: raw payload has the wrong length")
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
    if bits[count * width :].any():
        raise FormatError("corrupt file: nonzero padding bits in raw payload")
    bits = bits[: count * width].reshape(count, width).astype(np.int64)
    tokens = (bits << np.arange(width - 1, -1, -1)).sum(axis=1)
    if count and tokens.max() >= codebook_size:
        raise FormatError("corrupt file: token out of range")
    return tokens


def _position_runs(counts: np.ndarray) -> list[tuple[int, int, int]]:
    """(position, start, stop) stream offsets of the run of tokens at each position."""
    counts = np.asarray(counts, dtype=np.int64)
    longest = int(counts.max()) if counts.size else 0
    sizes = (counts[None, :] > np.arange(longest)[:, None]).sum(axis=1)
    ends = np.cumsum(sizes)
    return [(j, int(ends[j] - sizes[j]), int(ends[j])) for j in range(longest)]


def encode_range(ids: np.ndarray, counts: np.ndarray, prior: TokenPrior) -> bytes:
    """Range-code the first ``counts[i]`` tokens of each row of ``ids`` under the prior."""
    encoder = constriction.stream.queue.RangeEncoder()
    tiles, positions = stream_order(counts)
    symbols = np.asarray(ids[tiles, positions], dtype=np.int32)
    for j, start, stop in _position_runs(counts):
        encoder.encode(symbols[start:stop], prior.model(j))
    data = encoder.get_compressed().astype("<u4").tobytes()
    # Trailing zero bytes of the last word are implied: the decoder pads to a word.
    keep = len(data)
    while keep > len(data) - 3 and keep > 0 and data[keep - 1] == 0:
        keep -= 1
    return data[:keep]


def decode_range(data: bytes, counts: np.ndarray, prior: TokenPrior) -> np.ndarray:
    """Inverse of :func:`encode_range`: a (tiles, max(counts)) array, zero past each count."""
    padded = data + b"\0" * (-len(data) % 4)
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(padded, dtype="<u4").astype(np.uint32))
    symbols = np.empty(int(np.sum(counts)), dtype=np.int64)
    for j, start, stop in _position_runs(counts):
        symbols[start:stop] = decoder.decode(prior.model(j), stop - start)
    return _scatter(symbols, counts)


def _scatter(symbols: np.ndarray, counts: np.ndarray) -> np.ndarray:
    tiles, positions = stream_order(counts)
    out = np.zeros((len(counts), int(np.max(counts, initial=0))), dtype=np.int64)
    out[tiles, positions] = symbols
    return out


def encode_stream(ids: np.ndarray, counts: np.ndarray, prior: TokenPrior) -> tuple[Coder, bytes]:
    """Code with whichever of the range coder and raw packing gives fewer bytes."""
    coded = encode_range(ids, counts, prior)
    tiles, positions = stream_order(counts)
    raw = pack_raw(ids[tiles, positions], prior.codebook_size)
    return (Coder.RANGE, coded) if len(coded) <= len(raw) else (Coder.RAW, raw)


def decode_stream(coder: Coder, data: bytes, counts: np.ndarray, prior: TokenPrior) -> np.ndarray:
    """Token ids as a (tiles, max(counts)) array, zero past each tile's count."""
    if coder == Coder.RAW:
        return _scatter(unpack_raw(data, int(np.sum(counts)), prior.codebook_size), counts)
    try:
        return decode_range(data, counts, prior)
    except (ValueError, RuntimeError, AssertionError) as exc:
        raise FormatError(f"corrupt file: range decoding failed ({exc})") from None
