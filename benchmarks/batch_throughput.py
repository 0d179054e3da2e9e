"""Batch conversion throughput: one image at a time against the batched pipeline.

    python benchmarks/batch_throughput.py [../shared/data/kodak] [--tokens 64] [--batch-size 96] [--jobs 2]

"One at a time" is the plain loop a user would write with the Python API:
open, ``vtcodec.compress`` (all tiles of the image in one forward pass), write;
then read, ``vtcodec.decompress``, save PNG. "Batched" is ``vtcodec encode DIR -o OUT``
(tiles of several images per forward pass, threads loading and writing). Prints
images/s for both and their ratio, for encode and for decode.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import vtcodec
from vtcodec import batch
from vtcodec.imageio import IMAGE_SUFFIXES, open_image
from vtcodec.jobs import collect_jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", default=str(Path(__file__).resolve().parents[2] / "shared/data/kodak"))
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=96)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    model = vtcodec.load_model(device=args.device)
    sources = sorted(p for p in Path(args.folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    vtcodec.compress(open_image(sources[0]), args.tokens, model=model)  # warm-up
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        for path in sources:
            (root / "a" / path.name).with_suffix(".vtk").parent.mkdir(exist_ok=True)
            data = vtcodec.compress(open_image(path), args.tokens, model=model)
            (root / "a" / path.name).with_suffix(".vtk").write_bytes(data)
        single_encode = len(sources) / (time.perf_counter() - start)
        start = time.perf_counter()
        for path in sorted((root / "a").glob("*.vtk")):
            vtcodec.decompress(path.read_bytes(), model=model).save(path.with_suffix(".png"))
        single_decode = len(sources) / (time.perf_counter() - start)

        jobs = collect_jobs([args.folder], root / "b", IMAGE_SUFFIXES, lambda p: p.with_suffix(".vtk"))
        start = time.perf_counter()
        summary = batch.encode_many(jobs, model, args.tokens, batch_size=args.batch_size, threads=args.jobs, quiet=True)
        batched_encode = summary.converted / (time.perf_counter() - start)
        vtk_jobs = collect_jobs([root / "b"], root / "c", frozenset({".vtk"}), lambda p: p.with_suffix(".png"))
        start = time.perf_counter()
        summary = batch.decode_many(
            vtk_jobs, device=args.device, batch_size=args.batch_size, threads=args.jobs, quiet=True
        )
        batched_decode = summary.converted / (time.perf_counter() - start)
    print(f"{len(sources)} images from {args.folder}, {args.tokens} tokens/tile, device {args.device}")
    print("| | one at a time (images/s) | batched (images/s) | ratio |")
    print("|---|---|---|---|")
    print(f"| encode | {single_encode:.2f} | {batched_encode:.2f} | {batched_encode / single_encode:.2f}x |")
    print(f"| decode | {single_decode:.2f} | {batched_decode:.2f} | {batched_decode / single_decode:.2f}x |")


if __name__ == "__main__":
    main()
