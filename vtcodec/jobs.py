"""The jobs of a batch run: discovery, sharding across ranks, what is already done (resume), the manifest."""

from __future__ import annotations

import glob
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image
from tqdm import tqdm

from vtcodec import container
from vtcodec.errors import FormatError, InputError

if TYPE_CHECKING:  # torch, which the batch runs' bookkeeping does not need
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


def throughput(size: int, seconds: float) -> str:
    """``size`` bytes over ``seconds`` in the unit that shows them: B/s, kB/s or MB/s."""
    rate = size / max(seconds, 1e-9)
    for unit, scale in (("MB/s", 1e6), ("kB/s", 1e3)):
        if rate >= scale:
            return f"{rate / scale:.2f} {unit}"
    return f"{rate:.0f} B/s"


class Run:
    """Shared bookkeeping of a batch run: progress bar, manifest, summary."""

    def __init__(self, jobs: list[Job], manifest: Path | None, quiet: bool, unit: str) -> None:
        self.summary = Summary()
        self.start = time.perf_counter()
        self.manifest_path = manifest
        self.manifest = None
        if manifest is not None:
            try:
                self.manifest = manifest.open("a", encoding="utf-8")
            except OSError as exc:
                raise InputError(f"{manifest}: cannot write the manifest ({exc.strerror or exc})") from None
        self.bar = tqdm(total=len(jobs), unit=unit, disable=quiet, dynamic_ncols=True, file=None)
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
            self.bar.write(f"vtcodec: error: {fields.get('error')}", file=sys.stderr)
        self.summary.bytes_in += int(fields.pop("bytes_in", 0))
        self.summary.bytes_out += int(fields.get("bytes", 0) or 0)
        if self.manifest:
            line = {"source": str(job.source), "output": str(job.output), "status": status, **fields}
            try:
                self.manifest.write(json.dumps(line) + "\n")
                self.manifest.flush()
            except OSError as exc:
                self._manifest_failed(exc)
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        self.bar.set_postfix_str(f"{throughput(self.summary.bytes_in, elapsed)} in", refresh=False)
        self.bar.update(1)

    def _manifest_failed(self, exc: OSError) -> None:
        """The manifest cannot be written: say so once, stop writing it, and fail the run at its end."""
        message = f"{self.manifest_path}: cannot write the manifest ({exc.strerror or exc}); its lines stop here"
        self.summary.failed.append((self.manifest_path, message))
        self.bar.write(f"vtcodec: error: {message}", file=sys.stderr)
        manifest, self.manifest = self.manifest, None
        try:
            manifest.close()
        except OSError:
            pass  # what could not be flushed is lost; the error above says so

    def close(self) -> Summary:
        if self.manifest:
            try:
                self.manifest.close()
            except OSError as exc:
                self._manifest_failed(exc)
        self.bar.close()
        self.summary.seconds = time.perf_counter() - self.start
        return self.summary


def manifest_part(manifest: Path | None, rank: int, world: int) -> Path | None:
    """The manifest file of one rank: ``out.jsonl`` becomes ``out.rank1-of-4.jsonl`` when sharded."""
    if manifest is None or world == 1:
        return manifest
    return manifest.with_name(f"{manifest.stem}.rank{rank}-of-{world}{manifest.suffix}")
