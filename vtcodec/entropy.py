"""Entropy coding of token streams: constriction's range coder under a prior, or raw bit-packing.

A stream holds every tile's token prefix, position-major (see :func:`stream_order`).
Three coders:

- ``RAW``: fixed-width bit-packing;
- ``RANGE``: the range coder under the per-position prior (the position of a token
  inside its tile selects its row of :class:`~vtcodec.prior.TokenPrior`);
- ``CONTEXT``: the range coder under the digit-context prior
  (:class:`~vtcodec.context_prior.DigitContextPrior`): each FSQ digit of a token is
  coded under its neighbours' digits, digit by digit, position by position.
"""

from __future__ import annotations

import constriction
import numpy as np

from vtcodec.container import Coder
from vtcodec.context_prior import DigitContextPrior, token_digits
from vtcodec.errors import FormatError
from vtcodec.prior import TokenPrior

_CATEGORICAL = constriction.stream.model.Categorical(perfect=False)


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


def _finish(encoder: constriction.stream.queue.RangeEncoder) -> bytes:
    data = encoder.get_compressed().astype("<u4").tobytes()
    # Trailing zero bytes of the last word are implied: the decoder pads to a word.
    keep = len(data)
    while keep > len(data) - 3 and keep > 0 and data[keep - 1] == 0:
        keep -= 1
    return data[:keep]


def _decoder(data: bytes) -> constriction.stream.queue.RangeDecoder:
    padded = data + b"\0" * (-len(data) % 4)
    return constriction.stream.queue.RangeDecoder(np.frombuffer(padded, dtype="<u4").astype(np.uint32))


def encode_range(ids: np.ndarray, counts: np.ndarray, prior: TokenPrior, positions: range | None = None) -> bytes:
    """Range-code the first ``counts[i]`` tokens of each row of ``ids`` under the prior
    (``positions``: only the tokens at these positions, as one segment)."""
    encoder = constriction.stream.queue.RangeEncoder()
    tiles, where = stream_order(counts)
    symbols = np.asarray(ids[tiles, where], dtype=np.int32)
    for j, start, stop in _position_runs(counts):
        if positions is None or j in positions:
            encoder.encode(symbols[start:stop], prior.model(j))
    return _finish(encoder)


def decode_range(
    data: bytes, counts: np.ndarray, prior: TokenPrior, positions: range | None = None, ids: np.ndarray | None = None
) -> np.ndarray:
    """Inverse of :func:`encode_range`: a (tiles, max(counts)) array, zero past each count
    (``positions``: one segment of these positions, written into ``ids`` when given)."""
    counts = np.asarray(counts, dtype=np.int64)
    out = np.zeros((len(counts), int(counts.max(initial=0))), dtype=np.int64) if ids is None else ids
    decoder = _decoder(data)
    for j in range(out.shape[1]):
        if positions is None or j in positions:
            tiles = np.flatnonzero(counts > j)
            out[tiles, j] = decoder.decode(prior.model(j), len(tiles))
    return out


def encode_context(
    ids: np.ndarray, counts: np.ndarray, prior: DigitContextPrior, positions: range | None = None
) -> bytes:
    """Range-code the first ``counts[i]`` tokens of each row of ``ids`` under the digit-context prior.

    Order: position by position (the tiles that have a token there, in tile order),
    and within a position digit by digit; the decoder mirrors it exactly. ``positions``
    codes only the tokens at these positions, as one segment (their contexts still read
    the earlier positions, which a reader decodes first).
    """
    counts = np.asarray(counts, dtype=np.int64)
    ids = np.asarray(ids, dtype=np.int64)
    encoder = constriction.stream.queue.RangeEncoder()
    digits = token_digits(ids, prior.levels)
    longest = int(counts.max(initial=0))
    for j in positions if positions is not None else range(longest):
        if j >= longest:
            break
        tiles = np.flatnonzero(counts > j)
        keys = prior.keys(j, prior.neighbour_digits(ids, tiles, j))
        own = digits[tiles, j]
        keys[:, 1:] += own[:, :-1]
        for d in range(len(prior.levels)):
            encoder.encode(own[:, d].astype(np.int32), _CATEGORICAL, prior.probabilities(d, keys[:, d]))
    return _finish(encoder)


def decode_context(
    data: bytes,
    counts: np.ndarray,
    prior: DigitContextPrior,
    positions: range | None = None,
    ids: np.ndarray | None = None,
) -> np.ndarray:
    """Inverse of :func:`encode_context`: a (tiles, max(counts)) array, zero past each count.

    ``positions``: one segment of these positions, written into ``ids``, which must already
    hold the earlier positions (their contexts).
    """
    counts = np.asarray(counts, dtype=np.int64)
    longest = int(counts.max(initial=0))
    decoder = _decoder(data)
    if ids is None:
        ids = np.zeros((len(counts), longest), dtype=np.int64)
    basis = np.cumprod([1, *prior.levels[:-1]])
    for j in positions if positions is not None else range(longest):
        if j >= longest:
            break
        tiles = np.flatnonzero(counts > j)
        keys = prior.keys(j, prior.neighbour_digits(ids, tiles, j))
        token = np.zeros(len(tiles), dtype=np.int64)
        previous: np.ndarray | int = 0
        for d in range(len(prior.levels)):
            previous = decoder.decode(_CATEGORICAL, prior.probabilities(d, keys[:, d] + previous)).astype(np.int64)
            token += previous * int(basis[d])
        ids[tiles, j] = token
    return ids


def _scatter(symbols: np.ndarray, counts: np.ndarray) -> np.ndarray:
    tiles, positions = stream_order(counts)
    out = np.zeros((len(counts), int(np.max(counts, initial=0))), dtype=np.int64)
    out[tiles, positions] = symbols
    return out


def encode_stream(
    ids: np.ndarray, counts: np.ndarray, prior: TokenPrior, context: DigitContextPrior | None = None
) -> tuple[Coder, bytes]:
    """Range-code under the context prior when the model has one (else the per-position
    prior); fall back to raw packing when that is smaller."""
    if context is not None:
        coder, coded = Coder.CONTEXT, encode_context(ids, counts, context)
    else:
        coder, coded = Coder.RANGE, encode_range(ids, counts, prior)
    tiles, positions = stream_order(counts)
    raw = pack_raw(ids[tiles, positions], prior.codebook_size)
    return (coder, coded) if len(coded) <= len(raw) else (Coder.RAW, raw)


def decode_stream(
    coder: Coder, data: bytes, counts: np.ndarray, prior: TokenPrior, context: DigitContextPrior | None = None
) -> np.ndarray:
    """Token ids as a (tiles, max(counts)) array, zero past each tile's count."""
    if coder == Coder.RAW:
        return _scatter(unpack_raw(data, int(np.sum(counts)), prior.codebook_size), counts)
    if coder == Coder.CONTEXT and context is None:
        raise FormatError("file uses the context coder, but its model has no context prior")
    try:
        if coder == Coder.CONTEXT:
            ids = decode_context(data, counts, context)
            canonical = encode_context(ids, counts, context)
        else:
            ids = decode_range(data, counts, prior)
            canonical = encode_range(ids, counts, prior)
    except (ValueError, RuntimeError, AssertionError) as exc:
        raise FormatError(f"corrupt file: range decoding failed ({exc})") from None
    if ids.size and ids.max() >= prior.codebook_size:
        raise FormatError("corrupt file: token out of range")
    # The range decoder reads zeros past the end of its data, so a payload cut short (or with bytes
    # appended) would still give tokens. A payload is valid only if it is exactly what coding those
    # tokens writes: the one canonical stream, which is what every encoder writes.
    if canonical != data:
        raise FormatError("corrupt file: payload does not hold its token counts (cut short, extended or damaged)")
    return ids


def layer_ranges(ends: tuple[int, ...]) -> list[range]:
    """The token positions of each layer: ``ends`` are the layers' exclusive ends, increasing."""
    if not ends:
        return []
    return [range(start, stop) for start, stop in zip((0, *ends[:-1]), ends, strict=True)]


def _layer_order(counts: np.ndarray, positions: range) -> tuple[np.ndarray, np.ndarray]:
    """(tile, position) of every token of one layer, in stream order (:func:`stream_order`)."""
    tiles, where = stream_order(counts)
    keep = (where >= positions.start) & (where < positions.stop)
    return tiles[keep], where[keep]


def _encode_layer(
    coder: Coder,
    ids: np.ndarray,
    counts: np.ndarray,
    positions: range,
    prior: TokenPrior,
    context: DigitContextPrior | None,
) -> bytes:
    if coder == Coder.CONTEXT:
        return encode_context(ids, counts, context, positions)
    if coder == Coder.RANGE:
        return encode_range(ids, counts, prior, positions)
    return pack_raw(np.asarray(ids[_layer_order(counts, positions)], dtype=np.int64), prior.codebook_size)


def encode_layers(
    ids: np.ndarray,
    counts: np.ndarray,
    ends: tuple[int, ...],
    prior: TokenPrior,
    context: DigitContextPrior | None = None,
) -> tuple[Coder, list[bytes]]:
    """One payload per layer (format version 2): the tokens at each layer's positions, in stream
    order, each its own range-coder segment; raw packing instead when that is smaller in all."""
    counts = np.asarray(counts, dtype=np.int64)
    ranges = layer_ranges(ends)
    coder = Coder.CONTEXT if context is not None else Coder.RANGE
    coded = [_encode_layer(coder, ids, counts, r, prior, context) for r in ranges]
    raw = [_encode_layer(Coder.RAW, ids, counts, r, prior, context) for r in ranges]
    return (coder, coded) if sum(map(len, coded)) <= sum(map(len, raw)) else (Coder.RAW, raw)


def decode_layers(
    coder: Coder,
    payloads: list[bytes] | tuple[bytes, ...],
    counts: np.ndarray,
    ends: tuple[int, ...],
    prior: TokenPrior,
    context: DigitContextPrior | None = None,
) -> np.ndarray:
    """Token ids of the first ``len(payloads)`` layers: a (tiles, max(counts)) array, zero past each
    count and past the last layer given. Each layer must be the one canonical coding of its tokens."""
    counts = np.asarray(counts, dtype=np.int64)
    if coder == Coder.CONTEXT and context is None:
        raise FormatError("file uses the context coder, but its model has no context prior")
    ids = np.zeros((len(counts), int(counts.max(initial=0))), dtype=np.int64)
    for data, positions in zip(payloads, layer_ranges(ends), strict=False):
        try:
            if coder == Coder.RAW:
                tiles, where = _layer_order(counts, positions)
                ids[tiles, where] = unpack_raw(data, len(tiles), prior.codebook_size)
            elif coder == Coder.CONTEXT:
                decode_context(data, counts, context, positions, ids)
            else:
                decode_range(data, counts, prior, positions, ids)
        except (ValueError, RuntimeError, AssertionError) as exc:
            raise FormatError(f"corrupt file: range decoding failed ({exc})") from None
        if ids.size and ids.max() >= prior.codebook_size:
            raise FormatError("corrupt file: token out of range")
        if coder != Coder.RAW and _encode_layer(coder, ids, counts, positions, prior, context) != data:
            raise FormatError("corrupt file: a layer does not hold its tokens (cut short, extended or damaged)")
    return ids
