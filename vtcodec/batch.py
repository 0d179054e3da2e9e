"""Batch conversion of many files: resumable, sharded across ranks, with a manifest.

``encode_many`` and ``decode_many`` take the files found by :func:`collect_jobs`.
Tiles of several images share one forward pass (``batch_size`` tiles), threads
load and write files while the network runs (``jobs``), outputs are written
atomically, and a rerun skips outputs that already exist and verify. Under
``torchrun`` (or any launcher that sets ``RANK`` and ``WORLD_SIZE``) each rank
converts its own shard of the sorted file list and writes its own manifest part.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vtcodec import codec, container
from vtcodec.decoders import choose
from vtcodec.errors import FormatError, InputError, UnknownModelError, UsageError, VtcodecError
from vtcodec.fileio import make_parent, read_input, write_atomic
from vtcodec.imageio import Prepared, check_options, image_file_bytes, open_prepared, with_extras
from vtcodec.jobs import (
    Job,
    Run,
    Summary,
    image_is_complete,
    vtk_is_complete,
)
from vtcodec.metadata import DEFAULT_METADATA, Extras
from vtcodec.pipeline import DEFAULT_LAYOUT, Layout, TileEncoder, TileRenderer
from vtcodec.tile_grid import TileGrid
from vtcodec.zoo import LoadedModel


def _prefetch(pool: ThreadPoolExecutor, fn: Callable, jobs: list[Job], depth: int) -> Iterator[tuple[Job, Future]]:
    """Submit ``fn(job)`` ahead of use, at most ``depth`` jobs in flight."""
    pending: list[tuple[Job, Future]] = []
    for job in jobs:
        pending.append((job, pool.submit(fn, job)))
        if len(pending) > depth:
            yield pending.pop(0)
    yield from pending


@dataclass
class _Pending:
    """An image whose tiles are on their way through the network."""

    job: Job
    grid: TileGrid
    bytes_in: int
    started: float
    extra_chunks: tuple[container.Chunk, ...] = ()  # colour profile, metadata, alpha

    __hash__ = object.__hash__  # a key of the tile encoder: each image its own


class _Writes:
    """Outputs written on worker threads; each job is recorded in the run once its file is on disk (or failed)."""

    def __init__(self, pool: ThreadPoolExecutor, run: Run) -> None:
        self.pool, self.run = pool, run
        self.futures: list[Future] = []

    def submit(self, job: Job, write: Callable[[], int], bytes_in: int, started: float, **fields: object) -> None:
        """Write ``job.output`` with ``write``, which returns the bytes written; ``fields`` go into its record."""

        def done(future: Future) -> None:
            error = future.exception()
            if error is not None:
                self.run.record(job, "error", error=_message(job, error), bytes_in=bytes_in)
                return
            seconds = round(time.perf_counter() - started, 4)
            self.run.record(job, "ok", bytes=future.result(), **fields, seconds=seconds, bytes_in=bytes_in)

        def make_and_write() -> int:
            make_parent(job.output)
            return write()

        future = self.pool.submit(make_and_write)
        future.add_done_callback(done)
        self.futures.append(future)

    def wait(self) -> None:
        for future in self.futures:
            future.exception()


def _uniform_tokens(model: LoadedModel, tokens: int | None, *targets: float | None) -> int | None:
    """The token count of every tile, or None when a per-image target (bytes, bpp, PSNR, quality) is asked for."""
    targets = [v for v in (tokens, *targets) if v is not None]
    if len(targets) > 1:
        raise UsageError("use only one of tokens, bytes, bpp, psnr, quality")
    if targets and tokens is None:
        return None
    tokens = min(codec.DEFAULT_TOKENS, model.config.max_tokens) if tokens is None else tokens
    if not 0 <= tokens <= model.config.max_tokens:
        raise UsageError(f"tokens per tile must be between 0 and {model.config.max_tokens}")
    return tokens


def encode_many(
    jobs: list[Job],
    model: LoadedModel,
    tokens: int | None = None,
    *,
    max_bytes: int | None = None,
    bpp: float | None = None,
    psnr: float | None = None,
    quality: float | None = None,
    batch_size: int = 32,
    threads: int = 2,
    force: bool = False,
    manifest: Path | None = None,
    quiet: bool = False,
    metadata: str = DEFAULT_METADATA,
    alpha: str = "keep",
    layout: Layout = DEFAULT_LAYOUT,
) -> Summary:
    """Encode every job's image to ``.vtk``; failures are recorded and the run goes on.

    With a token count, tiles of consecutive images share forward passes of
    ``batch_size`` tiles. Budgets and quality targets (``max_bytes``, ``bpp``,
    ``psnr``, ``quality``) are per image and run image by image. ``metadata``, ``alpha`` and
    ``layout`` are as for :func:`vtcodec.codec.encode`.
    """
    check_options(metadata, alpha)  # a bad option fails before any file is read
    if batch_size < 1 or threads < 1:
        raise UsageError("batch size and jobs must be >= 1")
    tokens = _uniform_tokens(model, tokens, max_bytes, bpp, psnr, quality)
    if quality is not None:
        codec.slope_for_quality(quality)  # a bad value fails before any file is read
    run = Run(jobs, manifest, quiet, "img")
    todo = run.skip_finished(jobs, lambda path: not force and vtk_is_complete(path, model))

    def load(job: Job) -> tuple[Prepared, int]:
        return open_prepared(job.source, None, metadata, alpha), job.source.stat().st_size

    with ThreadPoolExecutor(threads) as loaders, ThreadPoolExecutor(threads) as writers:
        writes = _Writes(writers, run)

        def finish(item: _Pending, data: bytes, counts: np.ndarray, extra: dict) -> None:
            def write() -> int:
                write_atomic(item.job.output, data, force=True)
                return len(data)

            bpp_out = round(8 * len(data) / (item.grid.width * item.grid.height), 6)
            mean_tokens = round(float(np.mean(counts)), 3) if counts.size else 0
            writes.submit(item.job, write, item.bytes_in, item.started, bpp=bpp_out, tokens=mean_tokens, **extra)

        def tokenized(item: _Pending, token_image: codec.TokenImage) -> None:
            counts = np.full(item.grid.count, tokens, dtype=np.int64)
            finish(item, codec.pack_tokens(token_image, counts, model, item.extra_chunks, layout), counts, {})

        encoder = TileEncoder(model, batch_size, tokenized)  # tiles of consecutive images share forward passes
        for job, future in _prefetch(loaders, load, todo, depth=2 * threads):
            started = time.perf_counter()
            try:
                prepared, size = future.result()
                height, width = prepared.pixels.shape[:2]
                grid = TileGrid(width, height, model.config.tile_size)
                chunks, flat = codec.side_chunks(prepared)
                item = _Pending(job, grid, size, started, chunks)
                if tokens is not None and flat:
                    empty = codec.flat_file(grid, model, chunks, layout)
                    finish(item, empty.data, empty.counts, {})
                    continue
                if tokens is not None:
                    encoder.add(item, prepared.pixels)
                    continue
                targets = {"max_bytes": max_bytes, "bpp": bpp, "psnr": psnr, "quality": quality}
                result = codec.encode(prepared, model=model, layout=layout, **targets)
                finish(item, result.data, result.counts, {} if result.psnr is None else {"psnr": round(result.psnr, 3)})
            except (VtcodecError, OSError) as exc:
                run.record(job, "error", error=_message(job, exc))
        encoder.flush()
        writes.wait()
    return run.close()


def decode_many(
    jobs: list[Job],
    models: list[str | Path] | None = None,
    device: torch.device | str = "cpu",
    *,
    tokens: int | None = None,
    decoder: str | Path | None = None,
    batch_size: int = 32,
    threads: int = 2,
    force: bool = False,
    manifest: Path | None = None,
    quiet: bool = False,
    realism: float | None = None,
) -> Summary:
    """Decode every job's ``.vtk`` file to an image (format from the output suffix).

    ``decoder`` names the decoder for every file (default: each token space's
    default), or ``realism`` blends the default toward the perceptual one
    (``codec.render``). Tiles of a per-tile decoder share forward passes across
    files; a grid decoder renders each file on its own. A cut file is an error (truncated).
    """
    if batch_size < 1 or threads < 1:
        raise UsageError("batch size and jobs must be >= 1")
    run = Run(jobs, manifest, quiet, "img")
    todo = run.skip_finished(jobs, lambda path: not force and image_is_complete(path))

    def load(job: Job) -> tuple[codec.DecodedStream, int]:
        data = read_input(job.source)
        # a cut version 2 file is an error here, not a partial picture: a batch converts whole files
        return codec.read_tokens(data, models=models, device=device, partial=False), len(data)

    with ThreadPoolExecutor(threads) as loaders, ThreadPoolExecutor(threads) as writers:
        writes = _Writes(writers, run)

        def save(job: Job, canvas: np.ndarray, size: int, started: float, extras: Extras) -> None:
            def write() -> int:
                data = image_file_bytes(with_extras(canvas, extras), job.output)
                write_atomic(job.output, data, force=True)
                return len(data)

            writes.submit(job, write, size, started)

        renderer: TileRenderer | None = None  # the per-tile decoder of the queued files
        waiting: dict[object, tuple] = {}  # a key per queued file: its job, input bytes, start time, extras

        def rendered(key: object, canvas: np.ndarray) -> None:
            job, size, started, extras = waiting.pop(key)
            save(job, canvas, size, started, extras)

        for job, future in _prefetch(loaders, load, todo, depth=2 * threads):
            started = time.perf_counter()
            try:
                stream, size = future.result()
                header = stream.header
                grid = TileGrid(header.width, header.height, header.tile_size)
                counts = header.token_counts if tokens is None else np.minimum(header.token_counts, tokens)
                chosen = choose(stream.model, decoder, realism)
                if chosen.context != "tile":
                    pixels = chosen.render(stream.ids, counts, grid)
                    save(job, np.ascontiguousarray(pixels), size, started, stream.extras)
                    continue
                if renderer is None or renderer.decoder is not chosen:
                    if renderer is not None:
                        renderer.flush()
                    renderer = TileRenderer(chosen, batch_size, rendered)
                key = object()
                waiting[key] = (job, size, started, stream.extras)
                renderer.add(key, stream.ids, counts, grid)
            except (VtcodecError, OSError) as exc:
                run.record(job, "error", error=_message(job, exc))
        if renderer is not None:
            renderer.flush()
        writes.wait()
    return run.close()


def _message(job: Job, exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, (FormatError, UnknownModelError, InputError)) and str(job.source) not in text:
        text = f"{job.source}: {text}"
    elif not isinstance(exc, VtcodecError):
        text = f"{job.source}: {type(exc).__name__}: {text}"
    return text
