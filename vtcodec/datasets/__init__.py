"""PyTorch datasets over vtcodec files: token shards (``vtcodec tokens``) or a folder of ``.vtk`` files.

Each sample is a dict. With ``output="tokens"`` (no network runs):

- ``tokens``: int64 ``(max_tiles, length)``, tile ``i``'s tokens, zero-padded;
- ``mask``: bool, the same shape, true where a token was stored;
- ``counts`` (``max_tiles``,), ``grid`` (``[cols, rows]``), ``size`` (``[width, height]``),
  ``label`` (class index, -1 without class folders), and ``key``.

With ``output="image"`` the tokens are decoded to ``image``, a uint8 ``(3, H, W)``
tensor of the original size (sizes differ between samples: use ``batch_size=None``
or a collate function of your own), with ``size``, ``label`` and ``key``.

Both are iterable datasets that split their samples between ``DataLoader``
workers; ``models`` names model files beyond the shipped ones (for ``image``, and
for ``.vtk`` files made with another model). A corrupt sample (a CRC, shape or parse failure) is reported with a
warning and skipped; it is never decoded.
"""

from __future__ import annotations

import json
import random
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from vtcodec import container
from vtcodec.datasets.shards import INDEX, class_folder
from vtcodec.decoders import load_decoder
from vtcodec.errors import FormatError, InputError, VtcodecError
from vtcodec.metadata import Tone, apply_tone
from vtcodec.pipeline import read_tokens
from vtcodec.tile_grid import TileGrid
from vtcodec.zoo import find_model

OUTPUTS = ("tokens", "image")


class CorruptSample(Exception):
    """A sample that failed a check; the dataset skips it."""


class _TokenDataset(IterableDataset):
    """Shared iteration: worker split, shuffling, padding, decoding, skipping corrupt samples."""

    def __init__(
        self, output: str, shuffle: bool, seed: int, decoder: str | None, models: list[str | Path] | None
    ) -> None:
        if output not in OUTPUTS:
            raise InputError(f"output must be one of {', '.join(OUTPUTS)}, not {output!r}")
        self.output, self.shuffle, self.seed, self.decoder = output, shuffle, seed, decoder
        self.models = list(models or [])
        self.epoch = 0
        self.max_tiles = 1
        self.length = 1

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle differently in the next pass (with ``shuffle=True``)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self._count()

    def __iter__(self) -> Iterator[dict]:
        order = list(range(self._count()))
        if self.shuffle:
            random.Random(self.seed + self.epoch).shuffle(order)
        worker = get_worker_info()
        if worker is not None:
            order = order[worker.id :: worker.num_workers]
        for i in order:
            try:
                yield self._sample(i)
            except CorruptSample as exc:
                warnings.warn(f"vtcodec.datasets: skipping corrupt sample: {exc}", stacklevel=2)

    def _count(self) -> int:
        raise NotImplementedError

    def _sample(self, i: int) -> dict:
        raise NotImplementedError

    def _pack(
        self, key: str, ids: np.ndarray, counts: np.ndarray, grid: tuple[int, int], meta: dict, model=None
    ) -> dict:
        size = torch.tensor([meta["width"], meta["height"]])
        label = int(meta.get("label_index", -1))
        if self.output == "image":
            return {"image": self._decode(ids, counts, meta, model), "size": size, "label": label, "key": key}
        tiles = len(counts)
        if tiles > self.max_tiles or (counts.size and counts.max() > self.length):
            raise ValueError(f"{key}: {tiles} tiles of up to {counts.max()} tokens exceed max_tiles / length")
        tokens = torch.zeros(self.max_tiles, self.length, dtype=torch.int64)
        width = min(ids.shape[1], self.length)
        tokens[:tiles, :width] = torch.from_numpy(ids[:, :width].astype(np.int64))
        padded_counts = torch.zeros(self.max_tiles, dtype=torch.int64)
        padded_counts[:tiles] = torch.from_numpy(counts.astype(np.int64))
        mask = torch.arange(self.length).unsqueeze(0) < padded_counts.unsqueeze(1)
        tokens[~mask] = 0
        return {
            "tokens": tokens,
            "mask": mask,
            "counts": padded_counts,
            "grid": torch.tensor(grid),
            "size": size,
            "label": label,
            "key": key,
        }

    def _decode(self, ids: np.ndarray, counts: np.ndarray, meta: dict, model=None) -> torch.Tensor:
        """(3, H, W) uint8 as ``decompress`` makes it (the tone applied; a grey image's channel repeated)."""
        model = model if model is not None else find_model(bytes.fromhex(meta["model_id"]), self.models)
        grid = TileGrid(meta["width"], meta["height"], meta["tile_size"])
        full = np.zeros((grid.count, max(ids.shape[1], 1)), dtype=np.int64)
        full[:, : ids.shape[1]] = ids
        pixels = load_decoder(model, self.decoder).render(full, counts, grid)
        tone = meta.get("tone")
        if tone is not None:
            pixels = apply_tone(pixels, Tone(tone["grey"], tone["flat"], tuple(tone["mean"])))
            pixels = np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels
        return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)


class TokenShards(_TokenDataset):
    """The samples of a token-shard folder written by ``vtcodec tokens``.

    ``max_tiles`` and ``length`` fix the padded shape (default: the largest in the
    folder); ``shuffle`` reorders samples each epoch (see :meth:`set_epoch`). The
    shards are memory-mapped in each worker.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        output: str = "tokens",
        max_tiles: int | None = None,
        length: int | None = None,
        shuffle: bool = False,
        seed: int = 0,
        decoder: str | None = None,
        models: list[str | Path] | None = None,
    ) -> None:
        super().__init__(output, shuffle, seed, decoder, models)
        self.root = Path(root)
        try:
            index = json.loads((self.root / INDEX).read_text())
            self.classes: list[str] = index.get("classes", [])
            self.refs: list[tuple[str, dict]] = []
            for name in index["shards"]:
                part = json.loads((self.root / name).with_suffix(".index.json").read_text())
                self.refs += [(name, sample) for sample in part["samples"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{self.root}: not a complete token-shard folder ({exc})") from None
        self._arrays: dict[str, np.ndarray] = {}
        tiles = max((len(ref["counts"]) for _, ref in self.refs), default=1)
        longest = max((max(ref["counts"], default=0) for _, ref in self.refs), default=1)
        self.max_tiles, self.length = max_tiles or max(tiles, 1), length or max(longest, 1)

    def _count(self) -> int:
        return len(self.refs)

    def _array(self, shard: str) -> np.ndarray:
        if shard not in self._arrays:  # opened lazily, so each DataLoader worker maps its own
            try:
                self._arrays[shard] = np.load(self.root / shard, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise CorruptSample(f"{shard}: unreadable ({exc})") from None
        return self._arrays[shard]

    def _sample(self, i: int) -> dict:
        shard, ref = self.refs[i]
        flat = self._array(shard)
        try:
            tiles, width = (int(n) for n in ref["shape"])
            start = int(ref["offset"])
            ids = np.array(flat[start : start + tiles * width])
            if ids.size != tiles * width:
                raise ValueError("truncated shard")
            if zlib.crc32(ids.tobytes()) != ref["crc32"]:
                raise ValueError("CRC-32 mismatch")
            ids = ids.reshape(tiles, width)
            counts = np.asarray(ref["counts"], dtype=np.int64)
            grid = (int(ref["grid"][0]), int(ref["grid"][1]))
            if len(counts) != tiles or grid[0] * grid[1] != tiles or (counts.size and counts.max() > width):
                raise ValueError("shape does not match the counts")
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptSample(f"{shard} sample {ref.get('key')}: {exc}") from None
        return self._pack(ref["key"], ids, counts, grid, ref)


class VtkFolder(_TokenDataset):
    """The ``.vtk`` files below ``root`` (recursive), labelled by their class folder.

    Tokens are entropy-decoded (no network) with each file's model, which must be
    installed or given in ``models``.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        output: str = "tokens",
        max_tiles: int | None = None,
        length: int | None = None,
        shuffle: bool = False,
        seed: int = 0,
        decoder: str | None = None,
        models: list[str | Path] | None = None,
    ) -> None:
        super().__init__(output, shuffle, seed, decoder, models)
        self.root = Path(root)
        self.files = sorted(p for p in self.root.rglob("*.vtk") if p.is_file())
        labels = [class_folder(p.relative_to(self.root)) for p in self.files]
        self.classes = sorted({label for label in labels if label is not None})
        self.labels = [self.classes.index(label) if label is not None else -1 for label in labels]
        if not max_tiles or not length:
            tiles = longest = 0
            for path in self.files:
                try:
                    header, _ = container.unpack(path.read_bytes())
                except (OSError, VtcodecError):
                    continue
                tiles = max(tiles, len(header.token_counts))
                longest = max(longest, int(header.token_counts.max()) if header.token_counts.size else 0)
            max_tiles, length = max_tiles or max(tiles, 1), length or max(longest, 1)
        self.max_tiles, self.length = max_tiles, length

    def _count(self) -> int:
        return len(self.files)

    def _sample(self, i: int) -> dict:
        path = self.files[i]
        try:
            stream = read_tokens(path.read_bytes(), models=self.models, partial=False)  # cut files are corrupt here
        except (OSError, FormatError) as exc:
            raise CorruptSample(f"{path}: {exc}") from None
        h = stream.header
        meta = {"width": h.width, "height": h.height, "tile_size": h.tile_size, "model_id": h.model_id.hex()}
        meta["label_index"] = self.labels[i]
        meta["tone"] = None if stream.extras.tone is None else asdict(stream.extras.tone)
        key = str(path.relative_to(self.root))
        return self._pack(key, stream.ids, h.token_counts, tuple(h.grid), meta, stream.model)
