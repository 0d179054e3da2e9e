"""The codec's public API: compress and decompress, token counts, byte and quality targets, decoders by name.

The stages of the data path (tiles, tokenizer, tokens, prior and range coder,
container) are ``vtcodec.pipeline``; this module chooses what they do.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from vtcodec import container, rate
from vtcodec.decoders import choose
from vtcodec.decoders.rendering import Decoder
from vtcodec.errors import FormatError, InputError, UnknownModelError, UsageError
from vtcodec.imageio import Prepared, prepare, with_extras
from vtcodec.metadata import DEFAULT_METADATA, to_chunks, tone_of
from vtcodec.metrics import psnr_rgb
from vtcodec.pipeline import (
    DEFAULT_LAYOUT,
    DecodedStream,
    Layout,
    ModelSpec,
    TokenImage,
    pack_tokens,
    read_tokens,
    tokenize_pixels,
)
from vtcodec.tile_grid import TileGrid
from vtcodec.zoo import LoadedModel, load_model

DEFAULT_TOKENS = 64
# Quality 0 … 100 -> RD slope (squared error per bit at which every tile stops), log-linear between anchors.
# Calibrated by `python benchmarks/quality_calibration.py` on 24 held-out photos (bsds500/val): quality
# rises linearly with their mean MS-SSIM, and a fixed slope spreads MS-SSIM across images less than a
# fixed token count or a PSNR target does (results/quality-calibration.json).
QUALITY_SLOPES = (
    (0.0, 300000.0),
    (17.5, 144883.6),
    (34.2, 69970.9),
    (49.8, 33792.1),
    (65.5, 16319.8),
    (78.9, 7881.5),
    (87.6, 3806.4),
    (92.3, 1838.3),
    (95.8, 887.8),
    (98.3, 428.7),
    (99.6, 207.1),
    (100.0, 100.0),
)
SMALL_IMAGE_PIXELS = 32 * 32  # up to this size an image carries its exact mean (measured: metadata.tone_of)

DecoderSpec = Decoder | str | Path | None  # a decoder, its registered name or its file; None: the default
ImageInput = Image.Image | np.ndarray | Prepared
Chunks = tuple[container.Chunk, ...]


def _decoder(model: LoadedModel, decoder: DecoderSpec, realism: float | None = None) -> Decoder:
    if isinstance(decoder, Decoder):
        if realism is not None:
            raise UsageError("give a decoder or a realism, not both")
        return decoder
    return choose(model, decoder, realism)


def _resolve(model: ModelSpec) -> LoadedModel:
    return model if isinstance(model, LoadedModel) else load_model(model)


def _prepared(image: ImageInput, keep: str | frozenset[str], alpha: str) -> Prepared:
    """Pixels and extras of a PIL image, a uint8 array (RGB, or RGBA) or an already prepared image."""
    if isinstance(image, Prepared):
        return image
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
            raise InputError("arrays must be uint8 with shape (height, width, 3), or 4 with alpha")
        if image.shape[2] == 3:
            return Prepared(image)
        image = Image.fromarray(np.ascontiguousarray(image), "RGBA")
    if not isinstance(image, Image.Image):
        raise InputError(f"expected a PIL image or a uint8 array, got {type(image).__name__}")
    return prepare(image, keep, alpha)


def _as_pixels(image: ImageInput) -> np.ndarray:
    """The RGB pixels the tokenizer codes (alpha composited over white, as ``to_rgb`` does)."""
    return _prepared(image, "none", "drop").pixels


def tokenize(image: Image.Image | np.ndarray, model: ModelSpec = None) -> TokenImage:
    """Run the tokenizer over every tile and return all K tokens of each."""
    return tokenize_pixels(_as_pixels(image), _resolve(model))


def require_prefixes(model: LoadedModel, what: str, hint: bool = True) -> None:
    """:class:`UsageError` if ``model`` decodes only whole token sequences (TiTok) and ``what`` needs prefixes."""
    if not model.any_prefix:
        k = model.config.max_tokens
        raise UsageError(
            f"model {model.model_id.hex()} ({model.config.architecture}) decodes only all {k} tokens of a tile: "
            f"{what} needs a model whose prefixes decode" + (f" (use --tokens {k})" if hint else "")
        )


def _counts(tokens: int | np.ndarray | list[int], tiles: int, max_tokens: int) -> np.ndarray:
    try:
        counts = np.broadcast_to(np.asarray(tokens, dtype=np.int64), (tiles,)).copy()
    except ValueError:
        raise UsageError(f"give one token count, or one per tile ({tiles})") from None
    if counts.min() < 0 or counts.max() > max_tokens:
        raise UsageError(f"tokens per tile must be between 0 and {max_tokens}")
    return counts


def _empty_file(grid: TileGrid, model: LoadedModel, chunks: Chunks = (), layout: Layout = DEFAULT_LAYOUT) -> bytes:
    """A file with no tokens at all."""
    empty = TokenImage(grid, np.zeros((grid.count, 0), dtype=np.int64))
    return pack_tokens(empty, np.zeros(grid.count, dtype=np.int64), model, chunks, layout)


def smallest_file_bytes(
    grid: TileGrid, model: LoadedModel, chunks: Chunks = (), layout: Layout = DEFAULT_LAYOUT
) -> int:
    """Bytes of a file with no tokens at all: the floor of any budget."""
    return len(_empty_file(grid, model, chunks, layout))


def _check_budget(
    budget: int, grid: TileGrid, model: LoadedModel, chunks: Chunks, layout: Layout = DEFAULT_LAYOUT
) -> int:
    """The smallest file's bytes; :class:`InputError` if ``budget`` is below them."""
    floor = smallest_file_bytes(grid, model, chunks, layout)
    if budget < floor:
        extra = floor - smallest_file_bytes(grid, model, (), layout)
        why = f", {extra} of them for the colour profile, metadata and alpha" if extra else ""
        raise InputError(f"a budget of {budget} bytes is below the smallest possible file ({floor} bytes{why})")
    return floor


@dataclass(frozen=True)
class EncodeResult:
    """A coded file and how it met its target."""

    data: bytes
    counts: np.ndarray
    target_met: bool = True
    psnr: float | None = None  # measured PSNR-RGB, for quality targets


def fit_bytes(
    pixels: np.ndarray,
    tokens: TokenImage,
    model: LoadedModel,
    budget: int,
    table: rate.RDTable | None = None,
    decoder: DecoderSpec = None,
    chunks: Chunks = (),
    progress: bool = False,
    layout: Layout = DEFAULT_LAYOUT,
) -> EncodeResult:
    """RD-allocated file of at most ``budget`` bytes, ``chunks`` included (``table`` may be reused).

    Without a ``table``, distortion is measured only at lengths around the uniform count that fits
    (:func:`rate.window_lengths`): that count needs no decode, only entropy coding.
    """
    floor = _check_budget(budget, tokens.grid, model, chunks, layout)
    if table is None:
        uniform = fit_uniform_bytes(tokens, model, budget, chunks, layout)
        n = 0 if uniform is None else int(uniform.counts[0])
        lengths = rate.window_lengths(n, model.config.max_tokens)
        table = rate.measure(pixels, tokens, model, _decoder(model, decoder), progress, lengths)
    best = EncodeResult(_empty_file(tokens.grid, model, chunks, layout), np.zeros(tokens.grid.count, dtype=np.int64))

    def attempt(bits: float) -> int:
        """Pack the allocation for ``bits`` ideal bits; keep it if it is the largest file that fits."""
        nonlocal best
        counts = rate.allocate_for_bits(table, max(bits, 0.0))
        data = pack_tokens(tokens, counts, model, chunks, layout)
        if len(data) <= budget and len(data) > len(best.data):
            best = EncodeResult(data, counts)
        return len(data)

    # A first guess from the smallest file, then steps by the bytes missed, then bisection: the bytes
    # grow with the bits, but not smoothly (a version 2 layer's framing comes at once).
    low, high = 0.0, math.inf  # ideal-bit targets whose file fits, and does not
    bits = 8.0 * (budget - floor - tokens.grid.count - 3)
    for _ in range(24):
        size = attempt(bits)
        if size <= budget:
            low = max(low, bits)
            if budget - size <= 1:
                break
            bits = bits + 8.0 * (budget - size) if math.isinf(high) else (low + high) / 2
        else:
            high = min(high, bits)
            bits = max(low, bits - 8.0 * (size - budget) - 8.0) if low == 0.0 else (low + high) / 2
        if high - low < 4.0:
            break
    return best


def fit_uniform_bytes(
    tokens: TokenImage, model: LoadedModel, budget: int, chunks: Chunks = (), layout: Layout = DEFAULT_LAYOUT
) -> EncodeResult | None:
    """The same token count in every tile, the largest whose file fits ``budget`` (None if none does)."""
    files: dict[int, bytes] = {}

    def fits(n: int) -> bool:
        files[n] = pack_tokens(tokens, np.full(tokens.grid.count, n), model, chunks, layout)
        return len(files[n]) <= budget

    n = rate.largest_passing(0, model.config.max_tokens, fits)
    return None if n is None else EncodeResult(files[n], np.full(tokens.grid.count, n))


def slope_for_quality(quality: float) -> float:
    """The RD slope of ``quality`` (0 … 100; higher keeps more tokens), from :data:`QUALITY_SLOPES`."""
    if not 0.0 <= quality <= 100.0:
        raise UsageError(f"quality must be 0 … 100 (got {quality})")
    qualities, slopes = zip(*QUALITY_SLOPES, strict=True)
    return float(np.exp(np.interp(quality, qualities, np.log(slopes))))


def fit_quality(
    pixels: np.ndarray,
    tokens: TokenImage,
    model: LoadedModel,
    quality: float,
    table: rate.RDTable | None = None,
    decoder: DecoderSpec = None,
    chunks: Chunks = (),
    progress: bool = False,
    layout: Layout = DEFAULT_LAYOUT,
) -> EncodeResult:
    """Every tile stops at the RD slope of ``quality`` (:func:`slope_for_quality`; ``table`` may be reused).

    Without a ``table``, distortion is measured by :func:`rate.coarse_to_fine` around that slope's counts.
    """
    slope = slope_for_quality(quality)
    if table is None:
        chosen = _decoder(model, decoder)
        first = functools.partial(rate.allocate_for_slope, slope=slope)
        table = rate.coarse_to_fine(pixels, tokens, model, chosen, first, progress)
    counts = rate.allocate_for_slope(table, slope)
    return EncodeResult(pack_tokens(tokens, counts, model, chunks, layout), counts)


def fit_psnr(
    pixels: np.ndarray,
    tokens: TokenImage,
    model: LoadedModel,
    target_db: float,
    table: rate.RDTable | None = None,
    decoder: DecoderSpec = None,
    chunks: Chunks = (),
    progress: bool = False,
    layout: Layout = DEFAULT_LAYOUT,
) -> EncodeResult:
    """The smallest allocation found whose decode reaches ``target_db`` PSNR-RGB (``table`` may be reused).

    Without a ``table``, distortion is measured by :func:`rate.coarse_to_fine` around the counts that
    meet the target. Each candidate is decoded to check it; a miss tightens the target by the miss.
    If even every token misses, ``target_met`` is False and the file keeps every token.
    """
    chosen = _decoder(model, decoder)
    max_sse = rate.sse_for_psnr(tokens.grid.width * tokens.grid.height, target_db)
    if table is None:
        first = functools.partial(rate.allocate_for_sse, max_sse=max_sse)
        table = rate.coarse_to_fine(pixels, tokens, model, chosen, first, progress)

    def achieved(counts: np.ndarray) -> float:  # what a decode of the file gives: the same tokens
        return psnr_rgb(pixels, chosen.render(tokens.ids, counts, tokens.grid))

    for _ in range(8):
        counts = rate.allocate_for_sse(table, max_sse)
        if counts is None:
            break
        quality = achieved(counts)
        if quality >= target_db:
            return EncodeResult(pack_tokens(tokens, counts, model, chunks, layout), counts, True, quality)
        # neighbours at other lengths, interpolation, float noise between layouts: tighten by the miss
        max_sse *= min(0.995, 10 ** ((quality - target_db) / 10))
    counts = np.full(tokens.grid.count, model.config.max_tokens)
    return EncodeResult(pack_tokens(tokens, counts, model, chunks, layout), counts, False, achieved(counts))


def encode(
    image: ImageInput,
    tokens: int | list[int] | None = None,
    *,
    max_bytes: int | None = None,
    bpp: float | None = None,
    psnr: float | None = None,
    quality: float | None = None,
    model: ModelSpec = None,
    decoder: DecoderSpec = None,
    metadata: str | frozenset[str] = DEFAULT_METADATA,
    alpha: str = "keep",
    progress: bool = False,
    layout: Layout = DEFAULT_LAYOUT,
) -> EncodeResult:
    """Encode to one target: ``tokens`` per tile, a byte budget, a bpp budget, a PSNR floor or a quality.

    With a budget, tiles get different token counts chosen to minimize total
    distortion (rate-distortion allocation), measured with ``decoder`` (default:
    the token space's default decoder). With ``psnr``, the result is the
    smallest file found whose decoded PSNR-RGB is >= ``psnr``; if even all tokens
    miss it, ``target_met`` is False and the file keeps every token. ``quality``
    (0 … 100) fixes the RD slope at which every tile stops (:func:`slope_for_quality`):
    the bytes follow the image, and the look varies less between images than at a
    fixed token count.

    ``metadata`` (``all``, ``none`` or a comma list of ``icc``, ``exif``, ``xmp``) and
    ``alpha`` (``keep``, ``lossless`` or ``drop``) say what travels beside the pixels
    (``vtcodec.imageio.prepare``); budgets count their bytes. ``progress`` shows a bar on stderr,
    when it is a terminal, while a budget or quality target measures the tiles. ``layout`` is the
    file's format version and, for version 2, its ladder of layers.
    """
    targets = (("tokens", tokens), ("bytes", max_bytes), ("bpp", bpp), ("psnr", psnr), ("quality", quality))
    chosen = [name for name, v in targets if v is not None]
    if len(chosen) > 1:
        raise UsageError(f"use only one of tokens, bytes, bpp, psnr, quality (got {', '.join(chosen)})")
    if quality is not None:
        slope_for_quality(quality)  # a bad value is a usage error before any work
    loaded = _resolve(model)
    prepared = _prepared(image, metadata, alpha)
    pixels = prepared.pixels
    height, width = pixels.shape[:2]
    refused = container.too_many_pixels(width, height)
    if refused is not None:
        raise InputError(f"refused, too many pixels: {refused}")
    grid = TileGrid(width, height, loaded.config.tile_size)
    chunks, flat = side_chunks(prepared)
    counts = None
    if max_bytes is None and bpp is None and psnr is None and quality is None:  # counts first: no network yet
        default = min(DEFAULT_TOKENS, loaded.config.max_tokens) if loaded.any_prefix else loaded.config.max_tokens
        counts = _counts(default if tokens is None else tokens, grid.count, loaded.config.max_tokens)
        if np.any(counts != loaded.config.max_tokens):
            require_prefixes(loaded, f"{int(counts.min())} tokens per tile")
    else:
        require_prefixes(loaded, f"a {chosen[0]} target")
    if bpp is not None:
        if not bpp > 0:
            raise UsageError("bpp must be positive")
        max_bytes = int(bpp * width * height / 8)
    if max_bytes is not None:
        _check_budget(int(max_bytes), grid, loaded, chunks, layout)
    if flat:  # every pixel is the tone's colour: no tokens, whatever the target
        result = flat_file(grid, loaded, chunks, layout)
        return result if psnr is None else replace(result, psnr=math.inf)
    token_image = tokenize(pixels, loaded)
    if counts is not None:
        return EncodeResult(pack_tokens(token_image, counts, loaded, chunks, layout), counts)
    if max_bytes is not None:
        return fit_bytes(pixels, token_image, loaded, int(max_bytes), None, decoder, chunks, progress, layout)
    if quality is not None:
        return fit_quality(pixels, token_image, loaded, float(quality), None, decoder, chunks, progress, layout)
    return fit_psnr(pixels, token_image, loaded, float(psnr), None, decoder, chunks, progress, layout)


def side_chunks(prepared: Prepared) -> tuple[Chunks, bool]:
    """The chunks that travel beside ``prepared``'s tokens (its extras and its tone), and whether the
    image is flat: every pixel the tone's colour, so that it needs no tokens whatever the target."""
    height, width = prepared.pixels.shape[:2]
    small = width * height <= SMALL_IMAGE_PIXELS
    # a kept RGB profile describes three channels, so such an image stays RGB (no tone)
    tone = tone_of(prepared.pixels, small) if prepared.extras.icc is None else None
    return to_chunks(replace(prepared.extras, tone=tone)), tone is not None and tone.flat


def flat_file(grid: TileGrid, model: LoadedModel, chunks: Chunks, layout: Layout = DEFAULT_LAYOUT) -> EncodeResult:
    """The file of a flat image: no tokens; its tone chunk holds the colour."""
    return EncodeResult(_empty_file(grid, model, chunks, layout), np.zeros(grid.count, dtype=np.int64))


def compress(
    image: ImageInput,
    tokens: int | list[int] | None = None,
    *,
    max_bytes: int | None = None,
    bpp: float | None = None,
    psnr: float | None = None,
    quality: float | None = None,
    model: ModelSpec = None,
    decoder: DecoderSpec = None,
    metadata: str | frozenset[str] = DEFAULT_METADATA,
    alpha: str = "keep",
    layout: Layout = DEFAULT_LAYOUT,
) -> bytes:
    """Encode an image into ``.vtk`` bytes; see :func:`encode` for the targets, metadata, alpha and layout.

    ``tokens`` is tokens per tile (an int, or one per tile); with no target at all
    it is ``DEFAULT_TOKENS`` (or all of a model's tokens if it has fewer).
    """
    return encode(
        image,
        tokens,
        max_bytes=max_bytes,
        bpp=bpp,
        psnr=psnr,
        quality=quality,
        model=model,
        decoder=decoder,
        metadata=metadata,
        alpha=alpha,
        layout=layout,
    ).data


def render(
    stream: DecodedStream, tokens: int | None = None, decoder: DecoderSpec = None, realism: float | None = None
) -> Image.Image:
    """Decode tokens to pixels; ``tokens`` keeps only the first N of each tile (a preview).

    ``decoder`` names the decoder (``vtcodec.decoders``); None is the token space's default.
    ``realism`` (0 … 1) instead blends the default decoder's weights toward the ``perceptual``
    decoder's: 0 is fidelity (the default), 1 the perceptual decoder.
    """
    header = stream.header
    if tokens is not None and tokens < 0:
        raise UsageError("tokens must be >= 0")
    if tokens is not None and tokens < header.token_counts.max(initial=0):
        require_prefixes(stream.model, "a preview of fewer tokens", hint=False)
    counts = header.token_counts if tokens is None else np.minimum(header.token_counts, tokens)
    grid = TileGrid(header.width, header.height, header.tile_size)
    chosen = _decoder(stream.model, decoder, realism)
    if stream.extras.tone is not None and stream.extras.tone.flat:  # the tone is the picture
        pixels = np.zeros((header.height, header.width, 3), dtype=np.uint8)
    else:
        pixels = chosen.render(stream.ids, counts, grid)
    return with_extras(pixels, stream.extras)


def decompress(
    data: bytes,
    tokens: int | None = None,
    model: ModelSpec = None,
    decoder: DecoderSpec = None,
    realism: float | None = None,
) -> Image.Image:
    """Decode ``.vtk`` bytes into an image of the original size, with ``decoder`` (default: the best).

    RGB, or RGBA when the file keeps an alpha plane; a kept colour profile, EXIF and XMP are in ``info``.
    ``realism`` (0 … 1) is the fidelity-to-realism knob of :func:`render`.
    """
    stream = read_tokens(data, model)  # parse the file, find its token space, entropy-decode its tokens
    return render(stream, tokens, decoder, realism)  # then choose the decoder and render


def decode_progressive(
    source: bytes | BinaryIO,
    model: ModelSpec = None,
    decoder: DecoderSpec = None,
    chunk_size: int = 4096,
) -> Iterator[Image.Image]:
    """A picture after each layer of a version 2 file, as its bytes arrive (a version 1 file, or one
    with no tokens: one picture).

    ``source`` is the file's bytes or a binary stream read ``chunk_size`` bytes at a time (standard
    input, a socket's file, an HTTP body): each time more layers are complete, their picture is
    yielded. A stream that ends early stops after the layers it held; a damaged one raises
    :class:`vtcodec.FormatError`.
    """
    reader = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    data, shown, ended = b"", 0, False
    while not ended:
        more = reader.read(chunk_size)
        ended = not more
        data += more or b""
        try:
            parsed = container.parse(data, partial=True)
        except FormatError as exc:
            if ended or not str(exc).startswith("truncated"):
                raise
            continue  # the header has not all arrived
        held = len(parsed.payloads)  # a version 1 file parses only when it is whole
        if parsed.header.version == 1 or (held == 0 and (parsed.complete or ended)):
            yield render(read_tokens(data, model), decoder=decoder)
            return
        for k in range(shown + 1, held + 1):  # one picture per layer, also when several arrive at once
            yield render(read_tokens(data[: parsed.layer_offsets[k - 1]], model), decoder=decoder)
        shown = max(shown, held)
        if parsed.complete:
            return


def truncate(
    data: bytes,
    *,
    tokens: int | None = None,
    max_bytes: int | None = None,
    bpp: float | None = None,
    model: ModelSpec = None,
    cut: bool = False,
) -> bytes:
    """A smaller valid file holding a prefix of each tile's tokens; runs no neural network.

    ``tokens`` caps every tile at N tokens; ``bpp`` is a budget of ``bpp * pixels / 8``
    bytes, as in :func:`encode`. ``max_bytes`` caps the longest tiles
    first (the largest cap that fits, then single tokens in stream order while
    they fit): the file stores no distortions, so tiles that the encoder gave few
    tokens keep them (see format-spec). The result keeps the file's format version and layers.

    ``cut`` (and any version 2 file whose model is not installed) instead keeps the file's
    first layers, as many as fit (``tokens``: those that end at N or before), with no model
    and no entropy coding (:func:`vtcodec.container.cut`).
    """
    if sum(v is not None for v in (tokens, max_bytes, bpp)) != 1:
        raise UsageError("give exactly one of tokens, bytes or bpp")
    if bpp is not None and not bpp > 0:
        raise UsageError("bpp must be positive")
    if tokens is not None and tokens < 0:
        raise UsageError("tokens must be >= 0")
    parsed = container.parse(data, partial=True)
    header = parsed.header
    if bpp is not None:
        max_bytes = int(bpp * header.width * header.height / 8)
    if cut:
        return container.cut_to_fit(parsed, tokens, max_bytes)
    try:
        stream = read_tokens(data, model)
    except UnknownModelError:
        if header.version != 2:
            raise
        return container.cut_to_fit(parsed, tokens, max_bytes)
    header = stream.header
    require_prefixes(stream.model, "truncation", hint=False)
    layout = Layout(1) if header.version == 1 else Layout(2, header.layers or DEFAULT_LAYOUT.ladder)
    grid = TileGrid(header.width, header.height, header.tile_size)
    original = header.token_counts
    token_image = TokenImage(grid, stream.ids)
    chunks = header.chunks  # every chunk stays, unknown ones too
    if tokens is not None:
        return pack_tokens(token_image, np.minimum(original, tokens), stream.model, chunks, layout)
    _check_budget(max_bytes, grid, stream.model, chunks, layout)
    if len(data) <= max_bytes and parsed.complete:
        return bytes(data)

    def size(counts: np.ndarray) -> int:
        return len(pack_tokens(token_image, counts, stream.model, chunks, layout))

    # the largest cap that fits (a cap of 0 does: the budget is at least the smallest file)
    lo = rate.largest_passing(0, int(original.max()), lambda cap: size(np.minimum(original, cap)) <= max_bytes)
    counts = np.minimum(original, lo)
    for i in np.flatnonzero(original > lo):
        trial = counts.copy()
        trial[i] += 1
        if size(trial) <= max_bytes:
            counts = trial
    return pack_tokens(token_image, counts, stream.model, chunks, layout)
