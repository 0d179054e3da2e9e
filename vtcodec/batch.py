"""Batch conversion of many files: resumable, sharded across ranks, with a manifest.

``encode_many`` and ``decode_many`` take the files found by :func:`collect_jobs`.
Tiles of several images share one forward pass (``batch_size`` tiles), threads
load and write files while the network runs (``jobs``), outputs are written
atomically, and a rerun skips outputs that already exist and verify. Under
``torchrun`` (or any launcher that sets ``RANK`` and ``WORLD_SIZE``) each rank
converts its own shard of the sorted file list and writes its own manifest part.
"""

from __future__ import annotations

import glob
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from vtcodec import codec, container
from vtcodec.decoders import choose
from vtcodec.errors import FormatError, InputError, UnknownModelError, VtcodecError
from vtcodec.fileio import read_input, write_atomic
from vtcodec.imageio import Prepared, check_options, image_file_bytes, open_prepared, with_extras
from vtcodec.metadata import DEFAULT_METADATA, Extras, to_chunks
from vtcodec.pipeline import TileEncoder, TileRenderer
from vtcodec.tiling import TileGrid
from vtcodec.zoo import LoadedModel

VTK_SUFFIX = ".vtk"


@dataclass(frozen=True)
class Job:
    """One file to convert: its source and where its output goes."""

    source: Path
    output: Path


@dataclass
class Summary:
    """What a batch run did."""

    converted: int = 0
    skipped: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0


def shard() -> tuple[int, int]:
    """(rank, world size) from the launcher's environment; (0, 1) when run alone."""
    try:
        rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise InputError("RANK and WORLD_SIZE must be integers") from None
    if world < 1 or not 0 <= rank < world:
        raise InputError(f"bad RANK={rank} for WORLD_SIZE={world}")
    return rank, world


def _expand(pattern: str, suffixes: frozenset[str]) -> list[tuple[Path, Path]]:
    """(file, root) pairs for one input: a file, a folder (recursive) or a glob."""
    path = Path(pattern)
    if path.is_dir():
        files = [p for p in sorted(path.rglob("*")) if p.is_file() and p.suffix.lower() in suffixes]
        return [(p, path) for p in files]
    if path.is_file():
        return [(path, path.parent)]
    if glob.has_magic(pattern):
        parts = path.parts
        fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
        root = Path(*parts[:fixed]) if fixed else Path(".")
        files = sorted(Path(p) for p in glob.glob(pattern, recursive=True))
        return [(p, root) for p in files if p.is_file() and p.suffix.lower() in suffixes]
    raise InputError(f"{pattern}: no such file")


def collect_jobs(
    inputs: list[str | Path], out_dir: Path | None, suffixes: frozenset[str], name_output: Callable[[Path], Path]
) -> list[Job]:
    """Every input file (sorted, duplicates removed) with its output path.

    With ``out_dir`` the input tree is mirrored below it (paths relative to each
    folder or glob root given); otherwise outputs sit beside their inputs.
    ``name_output`` maps a relative (or full) input path to its output name.
    """
    jobs: dict[Path, Job] = {}
    for pattern in inputs:
        for file, root in _expand(str(pattern), suffixes):
            relative = file.relative_to(root) if out_dir is not None else file
            output = out_dir / name_output(relative) if out_dir is not None else name_output(file)
            jobs.setdefault(file.resolve(), Job(file, output))
    if not jobs:
        raise InputError(f"no input files found in {', '.join(map(str, inputs))}")
    return sorted(jobs.values(), key=lambda job: str(job.source))


def _remove_stale_temporaries(output: Path) -> None:
    """Delete temporary files a killed run left beside ``output`` (see :func:`vtcodec.fileio.write_atomic`)."""
    for stale in output.parent.glob(f".{glob.escape(output.name)}.*.tmp"):
        stale.unlink(missing_ok=True)


def vtk_is_complete(path: Path, model: LoadedModel | None = None) -> bool:
    """True if ``path`` is a whole ``.vtk`` file (header and CRC check), made with ``model`` if given."""
    try:
        header, _ = container.unpack(path.read_bytes())
    except (OSError, FormatError):
        return False
    return model is None or header.model_id == model.model_id


def image_is_complete(path: Path) -> bool:
    """True if ``path`` is an image file that decodes completely."""
    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, ValueError, Image.DecompressionBombError):
        return False
    return True


class _Run:
    """Shared bookkeeping of a batch run: progress bar, manifest, summary."""

    def __init__(self, jobs: list[Job], manifest: Path | None, quiet: bool, unit: str) -> None:
        self.summary = Summary()
        self.start = time.perf_counter()
        self.bar = tqdm(total=len(jobs), unit=unit, disable=quiet, dynamic_ncols=True, file=None)
        self.manifest = manifest.open("a", encoding="utf-8") if manifest else None
        self.lock = threading.Lock()

    def skip_finished(self, jobs: list[Job], finished: Callable[[Path], bool]) -> list[Job]:
        """Remove stale temporaries, record jobs whose output is ``finished`` as skipped; return the rest."""
        todo = []
        for job in jobs:
            _remove_stale_temporaries(job.output)
            if finished(job.output):
                self.record(job, "skipped", bytes=job.output.stat().st_size)
            else:
                todo.append(job)
        return todo

    def record(self, job: Job, status: str, **fields: object) -> None:
        with self.lock:
            self._record(job, status, fields)

    def _record(self, job: Job, status: str, fields: dict) -> None:
        if status == "ok":
            self.summary.converted += 1
        elif status == "skipped":
            self.summary.skipped += 1
        else:
            self.summary.failed.append((job.source, str(fields.get("error"))))
            self.bar.write(f"vtcodec: error: {fields.get('error')}")
        self.summary.bytes_in += int(fields.pop("bytes_in", 0))
        self.summary.bytes_out += int(fields.get("bytes", 0) or 0)
        if self.manifest:
            line = {"source": str(job.source), "output": str(job.output), "status": status, **fields}
            self.manifest.write(json.dumps(line) + "\n")
            self.manifest.flush()
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        self.bar.set_postfix_str(f"{self.summary.bytes_in / elapsed / 1e6:.2f} MB/s in", refresh=False)
        self.bar.update(1)

    def close(self) -> Summary:
        self.bar.close()
        if self.manifest:
            self.manifest.close()
        self.summary.seconds = time.perf_counter() - self.start
        return self.summary


def manifest_part(manifest: Path | None, rank: int, world: int) -> Path | None:
    """The manifest file of one rank: ``out.jsonl`` becomes ``out.rank1-of-4.jsonl`` when sharded."""
    if manifest is None or world == 1:
        return manifest
    return manifest.with_name(f"{manifest.stem}.rank{rank}-of-{world}{manifest.suffix}")


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


def encode_many(
    jobs: list[Job],
    model: LoadedModel,
    tokens: int | None = None,
    *,
    max_bytes: int | None = None,
    bpp: float | None = None,
    psnr: float | None = None,
    batch_size: int = 32,
    threads: int = 2,
    force: bool = False,
    manifest: Path | None = None,
    quiet: bool = False,
    metadata: str = DEFAULT_METADATA,
    alpha: str = "keep",
) -> Summary:
    """Encode every job's image to ``.vtk``; failures are recorded and the run goes on.

    With a token count, tiles of consecutive images share forward passes of
    ``batch_size`` tiles. Budgets and quality targets (``max_bytes``, ``bpp``,
    ``psnr``) are per image and run image by image. ``metadata`` and ``alpha`` are
    as for :func:`vtcodec.codec.encode`.
    """
    check_options(metadata, alpha)  # a bad option fails before any file is read
    if batch_size < 1 or threads < 1:
        raise InputError("batch size and jobs must be >= 1")
    targets = [v for v in (tokens, max_bytes, bpp, psnr) if v is not None]
    if len(targets) > 1:
        raise InputError("use only one of tokens, bytes, bpp, psnr")
    uniform = not targets or tokens is not None
    if uniform:
        tokens = min(codec.DEFAULT_TOKENS, model.config.max_tokens) if tokens is None else tokens
        if not 0 <= tokens <= model.config.max_tokens:
            raise InputError(f"tokens per tile must be between 0 and {model.config.max_tokens}")
    run = _Run(jobs, manifest, quiet, "img")
    todo = run.skip_finished(jobs, lambda path: not force and vtk_is_complete(path, model))

    def load(job: Job) -> tuple[Prepared, int]:
        return open_prepared(job.source, None, metadata, alpha), job.source.stat().st_size

    with ThreadPoolExecutor(threads) as loaders, ThreadPoolExecutor(threads) as writers:
        writes: list[Future] = []

        def finish(item: _Pending, data: bytes, counts: np.ndarray, extra: dict) -> None:
            def write() -> None:
                write_atomic(item.job.output, data, force=True)

            def done(future: Future) -> None:
                error = future.exception()
                if error is not None:
                    run.record(item.job, "error", error=_message(item.job, error), bytes_in=item.bytes_in)
                    return
                g = item.grid
                run.record(
                    item.job,
                    "ok",
                    bytes=len(data),
                    bpp=round(8 * len(data) / (g.width * g.height), 6),
                    tokens=round(float(np.mean(counts)), 3) if counts.size else 0,
                    seconds=round(time.perf_counter() - item.started, 4),
                    bytes_in=item.bytes_in,
                    **extra,
                )

            item.job.output.parent.mkdir(parents=True, exist_ok=True)
            future = writers.submit(write)
            future.add_done_callback(done)
            writes.append(future)

        def tokenized(item: _Pending, token_image: codec.TokenImage) -> None:
            counts = np.full(item.grid.count, tokens, dtype=np.int64)
            finish(item, codec.pack_tokens(token_image, counts, model, item.extra_chunks), counts, {})

        encoder = TileEncoder(model, batch_size, tokenized)  # tiles of consecutive images share forward passes

        for job, future in _prefetch(loaders, load, todo, depth=2 * threads):
            started = time.perf_counter()
            try:
                prepared, size = future.result()
                pixels = prepared.pixels
                height, width = pixels.shape[:2]
                grid = TileGrid(width, height, model.config.tile_size)
                item = _Pending(job, grid, size, started, to_chunks(prepared.extras))
                if not uniform:
                    result = codec.encode(prepared, max_bytes=max_bytes, bpp=bpp, psnr=psnr, model=model)
                    extra = {} if result.psnr is None else {"psnr": round(result.psnr, 3)}
                    finish(item, result.data, result.counts, extra)
                    continue
                encoder.add(item, pixels)
            except (VtcodecError, OSError) as exc:
                run.record(job, "error", error=_message(job, exc))
        encoder.flush()
        for future in writes:
            future.exception()
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
    files; a grid decoder renders each file on its own.
    """
    if batch_size < 1 or threads < 1:
        raise InputError("batch size and jobs must be >= 1")
    run = _Run(jobs, manifest, quiet, "img")
    todo = run.skip_finished(jobs, lambda path: not force and image_is_complete(path))

    def load(job: Job) -> tuple[codec.DecodedStream, int]:
        data = read_input(job.source)
        return codec.read_tokens(data, models=models, device=device), len(data)

    with ThreadPoolExecutor(threads) as loaders, ThreadPoolExecutor(threads) as writers:
        writes: list[Future] = []

        def save(job: Job, canvas: np.ndarray, size: int, started: float, extras: Extras) -> None:
            def write() -> int:
                data = image_file_bytes(with_extras(canvas, extras), job.output)
                write_atomic(job.output, data, force=True)
                return len(data)

            def done(future: Future) -> None:
                error = future.exception()
                if error is not None:
                    run.record(job, "error", error=_message(job, error), bytes_in=size)
                    return
                seconds = round(time.perf_counter() - started, 4)
                run.record(job, "ok", bytes=future.result(), seconds=seconds, bytes_in=size)

            job.output.parent.mkdir(parents=True, exist_ok=True)
            future = writers.submit(write)
            future.add_done_callback(done)
            writes.append(future)

        renderer: list[TileRenderer | None] = [None]  # the per-tile decoder of the queued files

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
                if renderer[0] is None or renderer[0].decoder is not chosen:
                    if renderer[0] is not None:
                        renderer[0].flush()
                    renderer[0] = TileRenderer(chosen, batch_size, rendered)
                key = object()
                waiting[key] = (job, size, started, stream.extras)
                renderer[0].add(key, stream.ids, counts, grid)
            except (VtcodecError, OSError) as exc:
                run.record(job, "error", error=_message(job, exc))
        if renderer[0] is not None:
            renderer[0].flush()
        for future in writes:
            future.exception()
    return run.close()


def _message(job: Job, exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, (FormatError, UnknownModelError, InputError)) and str(job.source) not in text:
        text = f"{job.source}: {text}"
    elif not isinstance(exc, VtcodecError):
        text = f"{job.source}: {type(exc).__name__}: {text}"
    return text
