"""Encode and decode one large synthetic image; print wall time and peak memory.

    python benchmarks/large_image.py [--side 8000] [--tokens 16] [--decoder NAME]

Shows that memory stays bounded (tiles go through the network in batches; a grid
decoder works in overlapping windows of tiles): peak RSS is printed next to the
size of the image itself.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
from PIL import Image

import vtcodec


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--side", type=int, default=8000)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--decoder", default=None, help="decoder name or file [the default one]")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (args.side // 64 + 1, args.side // 64 + 1, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((args.side, args.side), Image.Resampling.BILINEAR)
    vtcodec.load_model()
    base = peak_rss_mb()
    t0 = time.perf_counter()
    data = vtcodec.compress(image, tokens=args.tokens)
    t1 = time.perf_counter()
    out = vtcodec.decompress(data, decoder=args.decoder)
    t2 = time.perf_counter()
    assert out.size == image.size
    pixels_mb = args.side * args.side * 3 / 2**20
    decoder = vtcodec.load_decoder(vtcodec.load_model(), args.decoder).name
    print(f"{args.side}x{args.side}, {args.tokens} tokens/tile, decoder {decoder}: {len(data)} bytes")
    print(f"encode {t1 - t0:.1f} s, decode {t2 - t1:.1f} s")
    print(f"peak RSS {peak_rss_mb():.0f} MB (after loading the model: {base:.0f} MB; one RGB copy: {pixels_mb:.0f} MB)")


if __name__ == "__main__":
    main()
