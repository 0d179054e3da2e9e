"""A dataset stored as tokens: bytes on disk and read rates.

    python benchmarks/token_dataset.py [--images ../shared/data/train/imagenet-sample]
        [--tokens 16 64 256] [--decode-samples 100] [--work /tmp/vtcodec-token-bench] [--json out.json]

Each image is tokenized once with the default model and packed at every token
count (a prefix of the same tokens, as `vtcodec truncate` would give). It reports
the source files' bytes, the ``.vtk`` files' bytes and the token shards' bytes
(`vtcodec tokens`, from the ``.vtk`` folder: entropy decoding only), then the
read rate in samples per second of ``vtcodec.datasets`` with 0 and 2 DataLoader
workers: tokens from shards, tokens from the ``.vtk`` folder, and decoded images
from shards (the first ``--decode-samples`` samples, at the middle token count).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

import vtcodec
from vtcodec.codec import tokenize
from vtcodec.datasets import TokenShards, VtkFolder
from vtcodec.datasets.shards import export_shards, find_sources
from vtcodec.imageio import open_image
from vtcodec.pipeline import pack_tokens

ROOT = Path(__file__).resolve().parent.parent


def read_rate(dataset, workers: int, batch_size: int | None) -> float:
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    start, seen = time.perf_counter(), 0
    for batch in loader:
        seen += len(batch["key"]) if batch_size else 1
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=str(ROOT.parent / "shared" / "data" / "train" / "imagenet-sample"))
    parser.add_argument("--tokens", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--decode-samples", type=int, default=100)
    parser.add_argument("--work", default="/tmp/vtcodec-token-bench")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    model = vtcodec.load_model()
    sources = find_sources([args.images])
    source_bytes = sum(s.path.stat().st_size for s in sources)
    vtk_bytes = dict.fromkeys(args.tokens, 0)
    started = time.perf_counter()
    for i, source in enumerate(sources):
        tokens = tokenize(open_image(source.path), model)
        for n in args.tokens:
            data = pack_tokens(tokens, np.full(tokens.grid.count, n), model)
            relative = source.path.relative_to(args.images).with_suffix(".vtk")
            out = work / f"vtk{n}" / relative
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
            vtk_bytes[n] += len(data)
        if (i + 1) % 100 == 0:
            print(f"{i + 1}/{len(sources)} images encoded", flush=True)
    encode_s = time.perf_counter() - started
    rows = []
    for n in args.tokens:
        summary = export_shards([work / f"vtk{n}"], work / f"shards{n}", quiet=True)
        rows.append({"tokens": n, "vtk_bytes": vtk_bytes[n], "shard_bytes": summary.bytes_out})
    count = len(sources)
    print(f"{count} images from {args.images}, model {model.model_id.hex()}, encoded in {encode_s:.0f} s")
    print("| stored as | bytes | bytes per image | share of the source JPEGs |")
    print("|---|---|---|---|")
    print(f"| source files | {source_bytes} | {source_bytes / count:.0f} | 100 % |")
    for row in rows:
        for kind, key in ((".vtk files", "vtk_bytes"), ("token shards", "shard_bytes")):
            b = row[key]
            print(f"| {kind}, {row['tokens']} tokens/tile | {b} | {b / count:.0f} | {100 * b / source_bytes:.2f} % |")
    middle = args.tokens[len(args.tokens) // 2]
    rates = {}
    shards = TokenShards(work / f"shards{middle}")
    folder = VtkFolder(work / f"vtk{middle}", max_tiles=shards.max_tiles, length=shards.length)
    images = TokenShards(work / f"shards{middle}", output="image")
    decode_count = min(args.decode_samples, len(images))
    for workers in (0, 2):
        rates[("tokens, shards", workers)] = read_rate(shards, workers, 64)
        rates[("tokens, .vtk folder", workers)] = read_rate(folder, workers, 64)
        subset = _FirstN(images, decode_count)
        rates[("decoded images, shards", workers)] = read_rate(subset, workers, None)
    print(f"\nread rate at {middle} tokens/tile (samples/s; decoded images: the first {decode_count} samples)")
    print("| what | 0 workers | 2 workers |")
    print("|---|---|---|")
    for what in ("tokens, shards", "tokens, .vtk folder", "decoded images, shards"):
        print(f"| {what} | {rates[(what, 0)]:.1f} | {rates[(what, 2)]:.1f} |")
    if args.json:
        record = {
            "images": count,
            "source_bytes": source_bytes,
            "rows": rows,
            "read_rate": {f"{what} / {w} workers": v for (what, w), v in rates.items()},
            "model_id": model.model_id.hex(),
        }
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")


class _FirstN(torch.utils.data.IterableDataset):
    """The first ``n`` samples of an iterable dataset, split between workers as the dataset splits them."""

    def __init__(self, dataset, n: int) -> None:
        self.dataset, self.n = dataset, n

    def __iter__(self):
        worker = torch.utils.data.get_worker_info()
        share = self.n if worker is None else len(range(worker.id, self.n, worker.num_workers))
        for i, sample in enumerate(self.dataset):
            if i == share:
                return
            yield sample


if __name__ == "__main__":
    main()
