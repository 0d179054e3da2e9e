"""Token shards: a dataset of ``.vtk`` files (or images) as token arrays for ML training.

A shard holds ``SHARD_SIZE`` samples in two files:

- ``tokens-NNNNNN.npy``: one flat uint16 array (a plain NumPy file; ``np.load(...,
  mmap_mode="r")`` maps it). Sample ``i`` occupies ``[offset, offset + tiles * n)``,
  a ``(tiles, n)`` array in tile raster order: tile ``t``'s first ``counts[t]``
  tokens, zeros after them, ``n`` the sample's largest count.
- ``tokens-NNNNNN.index.json``: the shard's samples, each with ``key``,
  ``source``, ``offset``, ``shape``, ``width``, ``height``, ``tile_size``, ``grid``
  (``[cols, rows]``), ``counts``, ``model_id``, ``label`` (its class folder, or
  null), ``label_index``, ``crc32`` (of its tokens' bytes) and ``tone`` (the file's
  ``metadata.Tone`` as a dict, or null: grey, flat and tiny images decode as the file does). Written after the
  ``.npy``, it marks the shard complete.

``index.json`` lists the shards, the sample count and the class names. Two bytes
per token and no per-sample container overhead: at 16 tokens per tile a tar
member header alone would outweigh a sample. ``vtcodec.datasets`` reads it all.
"""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vtcodec import codec
from vtcodec.errors import InputError, VtcodecError
from vtcodec.fileio import make_dir, read_input, write_atomic
from vtcodec.imageio import IMAGE_SUFFIXES, open_image, prepare
from vtcodec.jobs import VTK_SUFFIX, collect_jobs
from vtcodec.metadata import Tone, read_tone
from vtcodec.tile_grid import TileGrid
from vtcodec.zoo import LoadedModel, load_model

SHARD_SIZE = 1000
INDEX = "index.json"
FORMAT = "vtcodec-token-shards/1"


@dataclass(frozen=True)
class Source:
    """One input file and the class folder it sits in (None at the top of its tree)."""

    path: Path
    label: str | None


@dataclass
class ExportSummary:
    samples: int = 0
    skipped_shards: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)
    bytes_out: int = 0


def class_folder(relative: Path) -> str | None:
    """The label of a file at ``relative`` below its input folder: its first folder, if any."""
    return relative.parts[0] if len(relative.parts) > 1 else None


def shard_name(index: int) -> str:
    return f"tokens-{index:06d}.npy"


def part_path(out_dir: Path, index: int) -> Path:
    return out_dir / f"tokens-{index:06d}.index.json"


def find_sources(inputs: list[str | Path]) -> list[Source]:
    """Every ``.vtk`` and image file below ``inputs``, sorted, with its class folder.

    A file's label is the first folder of its path below the input folder (or glob
    root) that it was found in; files at the top have none.
    """
    suffixes = frozenset(IMAGE_SUFFIXES | {VTK_SUFFIX})
    jobs = collect_jobs(inputs, Path("."), suffixes, lambda relative: relative)  # output = path below its root
    return [Source(job.source, class_folder(job.output)) for job in jobs]


def sample_tokens(
    source: Path, model: LoadedModel | None, tokens: int | None
) -> tuple[codec.TokenImage, np.ndarray, bytes, Tone | None]:
    """(token image, counts, model id, tone) of a ``.vtk`` file (entropy decoding only) or an image
    (encoded as ``vtcodec encode`` would: a flat image gets no tokens)."""
    if source.suffix.lower() == VTK_SUFFIX:
        stream = codec.read_tokens(read_input(source), model, partial=False)
        header = stream.header
        grid = TileGrid(header.width, header.height, header.tile_size)
        counts = header.token_counts if tokens is None else np.minimum(header.token_counts, tokens)
        return codec.TokenImage(grid, stream.ids), counts, header.model_id, stream.extras.tone
    loaded = model if model is not None else load_model()
    prepared = prepare(open_image(source), "none", "drop")
    chunks, flat = codec.side_chunks(prepared)
    image = codec.tokenize(prepared.pixels, loaded)
    n = codec.DEFAULT_TOKENS if tokens is None else tokens
    counts = np.full(image.grid.count, 0 if flat else min(n, loaded.config.max_tokens))
    return image, counts, loaded.model_id, read_tone(chunks)


def _complete_part(out_dir: Path, index: int, keys: list[str]) -> dict | None:
    """The index part of shard ``index`` if the shard is complete (size and keys agree, no failed file)."""
    try:
        part = json.loads(part_path(out_dir, index).read_text())
        size = (out_dir / shard_name(index)).stat().st_size
    except (OSError, ValueError):
        return None
    complete = part.get("bytes") == size and part.get("keys") == keys and not part.get("failed")
    return part if complete else None


def _sample_record(
    key: str,
    source: Source,
    counts: np.ndarray,
    array: np.ndarray,
    grid: TileGrid,
    model_id: bytes,
    offset: int,
    class_index: dict[str, int],
) -> dict:
    """The index entry of one sample: where its tokens lie in the shard, its tile grid, label and checksum."""
    return {
        "key": key,
        "source": str(source.path),
        "offset": offset,
        "shape": list(array.shape),
        "width": grid.width,
        "height": grid.height,
        "tile_size": grid.tile,
        "grid": [grid.cols, grid.rows],
        "counts": [int(c) for c in counts],
        "model_id": model_id.hex(),
        "label": source.label,
        "label_index": class_index[source.label] if source.label is not None else -1,
        "crc32": zlib.crc32(array.tobytes()),
    }


def _write_shard(
    out_dir: Path,
    number: int,
    keys: list[str],
    chunk: list[Source],
    model: LoadedModel | None,
    tokens: int | None,
    class_index: dict[str, int],
    summary: ExportSummary,
    report: Callable[[str], None] | None,
    bar: tqdm,
) -> int:
    """Tokenize one shard's sources and write the shard and its index part; the samples it holds."""
    arrays, samples, failed, offset = [], [], [], 0
    for key, source in zip(keys, chunk, strict=True):
        bar.update(1)
        try:
            image, counts, model_id, tone = sample_tokens(source.path, model, tokens)
        except (VtcodecError, OSError) as exc:
            message = str(exc) if str(source.path) in str(exc) else f"{source.path}: {exc}"
            summary.failed.append((source.path, message))
            failed.append(str(source.path))
            if report:
                report(message)
            continue
        width = int(counts.max()) if counts.size else 0
        array = np.ascontiguousarray(image.ids[:, :width], dtype=np.uint16)
        array[np.arange(width)[None, :] >= counts[:, None]] = 0
        record = _sample_record(key, source, counts, array, image.grid, model_id, offset, class_index)
        samples.append({**record, "tone": None if tone is None else asdict(tone)})
        arrays.append(array.ravel())
        offset += array.size
    buffer = io.BytesIO()
    np.save(buffer, np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.uint16), allow_pickle=False)
    data = buffer.getvalue()
    write_atomic(out_dir / shard_name(number), data, force=True)
    part = {"bytes": len(data), "keys": keys, "samples": samples, "failed": failed}
    write_atomic(part_path(out_dir, number), json.dumps(part).encode(), force=True)
    return len(samples)


def export_shards(
    inputs: list[str | Path],
    out_dir: Path,
    *,
    model: LoadedModel | None = None,
    tokens: int | None = None,
    shard_size: int = SHARD_SIZE,
    force: bool = False,
    quiet: bool = False,
    report: Callable[[str], None] | None = None,
) -> ExportSummary:
    """Write token shards of every input below ``out_dir``; a rerun skips complete shards.

    Samples go to shards in sorted source order, ``shard_size`` each, so a rerun
    after a kill rebuilds only the shards that were not complete. Each shard and
    its index part are written atomically. A file that cannot be read is reported,
    left out of its shard, and the run goes on.
    """
    if shard_size < 1:
        raise InputError("shard size must be >= 1")
    sources = find_sources(inputs)
    make_dir(out_dir)
    classes = sorted({s.label for s in sources if s.label is not None})
    class_index = {name: i for i, name in enumerate(classes)}
    summary = ExportSummary()
    chunks = [sources[i : i + shard_size] for i in range(0, len(sources), shard_size)]
    bar = tqdm(total=len(sources), unit="file", disable=quiet, dynamic_ncols=True)
    for number, chunk in enumerate(chunks):
        keys = [f"{number * shard_size + j:09d}" for j in range(len(chunk))]
        part = None if force else _complete_part(out_dir, number, keys)
        if part is not None:
            summary.samples += len(part["samples"])
            summary.skipped_shards += 1
            bar.update(len(chunk))
            continue
        summary.samples += _write_shard(out_dir, number, keys, chunk, model, tokens, class_index, summary, report, bar)
    bar.close()
    index = {
        "format": FORMAT,
        "shards": [shard_name(i) for i in range(len(chunks))],
        "samples": summary.samples,
        "classes": classes,
    }
    write_atomic(out_dir / INDEX, (json.dumps(index, indent=1) + "\n").encode(), force=True)
    summary.bytes_out = sum(
        (out_dir / shard_name(i)).stat().st_size + part_path(out_dir, i).stat().st_size for i in range(len(chunks))
    )
    return summary
