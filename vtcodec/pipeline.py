"""The data path, stage by stage: tiles -> tokenizer -> tokens -> prior and range coder -> container, and back.

One image at a time (:func:`tokenize`, :func:`pack_tokens`, :func:`read_tokens`), and
batches that share the network's forward passes across images (:class:`TileEncoder`,
:class:`TileRenderer`), which ``vtcodec.batch`` schedules. ``vtcodec.codec`` is the
public API on top: targets, rate control, decoders by name.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from vtcodec import container, entropy
from vtcodec.decoders.rendering import Decoder
from vtcodec.errors import InputError, UnknownModelError, UsageError
from vtcodec.metadata import Extras, from_chunks
from vtcodec.tile_grid import TileGrid
from vtcodec.tiling import TILE_BATCH, iter_tile_batches, place_tiles
from vtcodec.zoo import LoadedModel, find_model

Chunks = tuple[container.Chunk, ...]
ModelSpec = LoadedModel | str | Path | None  # a loaded model, a model file, or None: the file's own


@dataclass(frozen=True)
class TokenImage:
    """An image as tokens: the tile grid and every tile's full token sequence."""

    grid: TileGrid
    ids: np.ndarray  # (tiles, K) int64


ENCODE_SHAPE = {"cpu": 4, "cuda": 32}  # tiles per encoder pass on each device, always (see encode_tiles)


def encode_tiles(model: LoadedModel, tiles: torch.Tensor) -> torch.Tensor:
    """Token ids (N, K) of tiles (N, 3, T, T), on the CPU.

    The encoder always runs on passes of exactly ``ENCODE_SHAPE`` tiles of the device in
    channels-last memory (the last pass padded), because convolution kernels choose their
    algorithm by shape and memory layout, and another algorithm can round a value to the other
    side of an FSQ step (tiles cut from an HWC image arrive channels-last, a concatenation is
    NCHW). With one shape and one layout, a tile's tokens do not depend on the batch size, the
    other images of a batch, or single or batch mode. On 1 CPU thread (``benchmarks/encode_shape.py``,
    2026-12-05), passes of 4 encode a Kodak image in 1.00x the time of one pass over all its tiles and
    a one-tile image in 3.0x (passes of 2: 1.11x and 1.8x; of 8: 0.94x and 5.8x).
    """
    shape = ENCODE_SHAPE.get(model.device.type, ENCODE_SHAPE["cpu"])
    out = []
    for start in range(0, len(tiles), shape):
        part = tiles[start : start + shape]
        if len(part) < shape:
            part = torch.cat([part, part.new_zeros((shape - len(part), *part.shape[1:]))])
        part = part.contiguous(memory_format=torch.channels_last)
        with model.autocast():
            ids = model.model.encode(part.to(model.device, non_blocking=True))
        out.append(ids[: min(shape, len(tiles) - start)].cpu())
    return torch.cat(out) if out else torch.zeros((0, model.config.max_tokens), dtype=torch.int64)


def tokenize_pixels(pixels: np.ndarray, model: LoadedModel) -> TokenImage:
    """Run the tokenizer over every tile of uint8 (H, W, 3) pixels and return all K tokens of each."""
    height, width = pixels.shape[:2]
    if width < 1 or height < 1:
        raise InputError("image has no pixels")
    grid = TileGrid(width, height, model.config.tile_size)
    chunks = [encode_tiles(model, b) for b in iter_tile_batches(pixels, grid, TILE_BATCH)]
    return TokenImage(grid, torch.cat(chunks).numpy().astype(np.int64))


DEFAULT_LADDER = (4, 8, 16, 32, 64, 128, 256, 512)  # layer ends of version 2 files (format-spec/vtk-v2.md)


@dataclass(frozen=True)
class Layout:
    """How a file lays out its tokens: format version 2 with layers that end at the ``ladder``'s
    token positions (any cut after the header decodes), or version 1 (one payload)."""

    version: int = container.FORMAT_VERSION
    ladder: tuple[int, ...] = DEFAULT_LADDER

    def __post_init__(self) -> None:
        if self.version not in container.FORMAT_VERSIONS:
            raise UsageError(f"vtcodec writes format versions 1 and 2, not {self.version}")
        if not self.ladder or min(self.ladder) < 1 or len(set(self.ladder)) > container.MAX_LAYERS - 1:
            raise UsageError(f"layers are 1 to {container.MAX_LAYERS - 1} token positions, each at least 1")


DEFAULT_LAYOUT = Layout()


def pack_tokens(
    tokens: TokenImage, counts: np.ndarray, model: LoadedModel, chunks: Chunks = (), layout: Layout = DEFAULT_LAYOUT
) -> bytes:
    """Entropy-code the first ``counts[i]`` tokens of each tile into a ``.vtk`` byte string with ``chunks``."""
    g = tokens.grid
    counts = np.asarray(counts, dtype=np.int64)
    version = layout.version
    header = container.Header(model.model_id, g.width, g.height, g.tile, counts, container.Coder.RAW, version, chunks)
    if version == 1:
        coder, payload = entropy.encode_stream(tokens.ids, counts, model.prior, model.context)
        return container.pack(replace(header, coder=coder), payload)
    ladder = layout.ladder if model.any_prefix else (model.config.max_tokens,)  # no prefix decodes: one layer
    ends = container.layer_ends(counts, ladder)
    coder, payloads = entropy.encode_layers(tokens.ids, counts, ends, model.prior, model.context)
    return container.pack_layers(replace(header, coder=coder, layers=ends), payloads)


@dataclass(frozen=True)
class Cut:
    """What a cut file holds: ``layers`` of ``of_layers`` layers, ``tokens`` of ``of_tokens`` tokens per tile."""

    layers: int
    of_layers: int
    tokens: int
    of_tokens: int

    def __str__(self) -> str:
        held = f"{self.layers} of {self.of_layers} layers"
        return f"partial file: {held}, {self.tokens} of {self.of_tokens} tokens per tile"


@dataclass(frozen=True)
class DecodedStream:
    """A parsed and entropy-decoded ``.vtk`` file."""

    header: container.Header
    ids: np.ndarray  # (tiles, max count), zero past each tile's count
    model: LoadedModel
    extras: Extras = field(default_factory=Extras)  # colour profile, metadata and alpha from the file's chunks
    cut: Cut | None = None  # a version 2 file cut short: what it held (its header's counts are capped to it)


def read_tokens(
    data: bytes,
    model: ModelSpec = None,
    models: list[str | Path] | None = None,
    device: str | torch.device = "cpu",
    partial: bool = True,
) -> DecodedStream:
    """Parse, verify and entropy-decode ``.vtk`` bytes (no neural network runs).

    Without a loaded ``model``, the file's model is looked up among ``model``,
    ``models``, registered paths and the shipped weights, and put on ``device``.
    A version 2 file cut short gives the tokens of its complete layers (``cut`` says how
    many), unless ``partial`` is False.
    """
    parsed = container.parse(data, partial=partial)
    header = parsed.header
    if isinstance(model, LoadedModel):
        loaded = model
    else:
        candidates = [model] if model is not None else []
        loaded = find_model(header.model_id, candidates + list(models or []), device)
    if loaded.model_id != header.model_id:
        raise UnknownModelError(f"file was made with model {header.model_id.hex()}, not {loaded.model_id.hex()}")
    if header.tile_size != loaded.config.tile_size:
        raise container.FormatError("corrupt file: tile size does not match the model")
    if header.token_counts.size and header.token_counts.max() > loaded.config.max_tokens:
        raise container.FormatError("corrupt file: more tokens per tile than the model has")
    if not loaded.any_prefix and np.any((header.token_counts > 0) & (header.token_counts < loaded.config.max_tokens)):
        raise container.FormatError("corrupt file: a fixed-length model's tile holds only part of its tokens")
    extras = from_chunks(header.chunks, header.width, header.height)
    if header.version == 1:
        ids = entropy.decode_stream(header.coder, parsed.payloads[0], header.token_counts, loaded.prior, loaded.context)
        return DecodedStream(header, ids, loaded, extras)
    counts = header.token_counts
    ids = entropy.decode_layers(header.coder, parsed.payloads, counts, header.layers, loaded.prior, loaded.context)
    if parsed.complete:
        return DecodedStream(header, ids, loaded, extras)
    held = len(parsed.payloads)
    limit = header.layers[held - 1] if held else 0
    if not loaded.any_prefix:
        raise container.FormatError("truncated: the file is cut, and its fixed-length model needs every token")
    cut = Cut(held, len(header.layers), limit, header.layers[-1])
    capped = replace(header, token_counts=np.minimum(counts, limit), layers=header.layers[:held])
    return DecodedStream(capped, ids[:, :limit], loaded, extras, cut)


class TileEncoder:
    """Tiles of many images through the encoder in shared forward passes of ``batch_size`` tiles.

    :meth:`add` queues an image under a key; when every tile of it has been through the
    network, ``done(key, tokens)`` is called. :meth:`flush` runs what is queued.
    """

    def __init__(self, model: LoadedModel, batch_size: int, done: Callable[[Hashable, TokenImage], None]) -> None:
        self.model, self.batch_size, self.done = model, batch_size, done
        self._queue: list[tuple[Hashable, int, torch.Tensor]] = []
        self._queued = 0
        self._parts: dict[Hashable, tuple[TileGrid, dict[int, torch.Tensor]]] = {}

    def add(self, key: Hashable, pixels: np.ndarray) -> None:
        height, width = pixels.shape[:2]
        grid = TileGrid(width, height, self.model.config.tile_size)
        self._parts[key] = (grid, {})
        first = 0
        for tiles in iter_tile_batches(pixels, grid, self.batch_size):
            self._queue.append((key, first, tiles))
            first += len(tiles)
            self._queued += len(tiles)
            if self._queued >= self.batch_size:
                self.flush()

    def flush(self) -> None:
        if not self._queue:
            return
        tiles = torch.cat([t for _, _, t in self._queue])
        if self.model.device.type == "cuda":
            tiles = tiles.pin_memory()
        ids = encode_tiles(self.model, tiles)
        offset = 0
        for key, first, part in self._queue:
            grid, parts = self._parts[key]
            parts[first] = ids[offset : offset + len(part)]
            offset += len(part)
            if sum(len(p) for p in parts.values()) == grid.count:
                del self._parts[key]
                all_ids = torch.cat([parts[k] for k in sorted(parts)]).numpy().astype(np.int64)
                self.done(key, TokenImage(grid, all_ids))
        self._queue, self._queued = [], 0


class TileRenderer:
    """Tiles of many files through a per-tile decoder in shared forward passes of ``batch_size`` tiles.

    :meth:`add` queues a file's tokens under a key; ``done(key, pixels)`` gets its uint8
    (H, W, 3) image when every tile is rendered. :meth:`flush` runs what is queued.
    """

    def __init__(self, decoder: Decoder, batch_size: int, done: Callable[[Hashable, np.ndarray], None]) -> None:
        if decoder.context != "tile":
            raise ValueError("TileRenderer needs a per-tile decoder; grid decoders render a file at a time")
        self.decoder, self.batch_size, self.done = decoder, batch_size, done
        self._queue: list[tuple[Hashable, int, np.ndarray, np.ndarray]] = []
        self._queued = 0
        self._canvases: dict[Hashable, tuple[TileGrid, np.ndarray, list[int]]] = {}

    def add(self, key: Hashable, ids: np.ndarray, counts: np.ndarray, grid: TileGrid) -> None:
        self._canvases[key] = (grid, np.empty((grid.height, grid.width, 3), dtype=np.uint8), [0])
        for first in range(0, grid.count, self.batch_size):
            stop = min(first + self.batch_size, grid.count)
            self._queue.append((key, first, ids[first:stop], counts[first:stop]))
            self._queued += stop - first
            if self._queued >= self.batch_size:
                self.flush()

    def flush(self) -> None:
        if not self._queue:
            return
        width = max(part.shape[1] for _, _, part, _ in self._queue)
        ids = np.zeros((self._queued, width), dtype=np.int64)
        row = 0
        for _, _, part, _ in self._queue:
            ids[row : row + len(part), : part.shape[1]] = part
            row += len(part)
        lengths = torch.from_numpy(np.concatenate([n for *_, n in self._queue]).astype(np.int64))
        device = self.decoder.device
        with self.decoder.autocast():
            tiles = self.decoder.network.decode(torch.from_numpy(ids).to(device), lengths.to(device))
        row = 0
        for key, first, part, _ in self._queue:
            grid, canvas, done = self._canvases[key]
            place_tiles(canvas, grid, first, tiles[row : row + len(part)])
            row += len(part)
            done[0] += len(part)
            if done[0] == grid.count:
                del self._canvases[key]
                self.done(key, canvas)
        self._queue, self._queued = [], 0
