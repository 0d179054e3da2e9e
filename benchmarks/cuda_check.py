"""CUDA against CPU on the same files: identical tokens after entropy decoding, and images per second.

    python benchmarks/cuda_check.py [--images samples] [--tokens 64] [--decoder NAME] [--model FILE|NAME]

For every image: encode on the CPU and on CUDA, then read each file on the other
device. The entropy-decoded tokens must equal the tokens each file was written
with on either device (the integer prior makes the bitstream device-independent);
the encoders' own tokens may differ in a few places (bf16 autocast before FSQ
rounding), and the script counts them. It prints encode and decode images per
second on each device, and the largest pixel difference between a CPU and a
CUDA decode of the same file. Exits 1 when a token mismatch is found. Run it on
a machine with a GPU (`benchmarks/device_session.sh`). ``--model`` checks another token space, an
imported One-D-Piece or TiTok model say (``--tokens`` all of TiTok's).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

import vtcodec
from vtcodec.codec import render, tokenize
from vtcodec.imageio import open_image
from vtcodec.pipeline import pack_tokens, read_tokens

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=str(ROOT / "samples"))
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--decoder", default=None)
    parser.add_argument("--model", default=None, help="a model file or an imported model's name [the default]")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to compare", file=sys.stderr)
        return 2
    files = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    models = {d: vtcodec.load_model(args.model, d) for d in ("cpu", "cuda")}
    seconds = {(d, op): 0.0 for d in models for op in ("encode", "decode")}
    bad, differing_tokens, total_tokens, max_pixel_diff = 0, 0, 0, 0
    for path in files:
        image = open_image(path)
        files_by_device, decoded = {}, {}
        for device, model in models.items():
            t0 = time.perf_counter()
            tokens = tokenize(image, model)
            data = pack_tokens(tokens, np.full(tokens.grid.count, args.tokens), model)
            torch.cuda.synchronize()
            seconds[(device, "encode")] += time.perf_counter() - t0
            files_by_device[device] = (data, tokens.ids[:, : args.tokens])
        cpu_ids, cuda_ids = files_by_device["cpu"][1], files_by_device["cuda"][1]
        differing_tokens += int((cpu_ids != cuda_ids).sum())
        total_tokens += cpu_ids.size
        for written_on, (data, ids) in files_by_device.items():
            for device, model in models.items():
                t0 = time.perf_counter()
                stream = read_tokens(data, model)
                pixels = np.asarray(render(stream, decoder=args.decoder))
                torch.cuda.synchronize()
                seconds[(device, "decode")] += time.perf_counter() - t0
                if not np.array_equal(stream.ids[:, : args.tokens], ids):
                    bad += 1
                    print(f"{path.name}: written on {written_on}, read on {device}: tokens differ")
                decoded[(written_on, device)] = pixels.astype(int)
            diff = np.abs(decoded[(written_on, "cpu")] - decoded[(written_on, "cuda")]).max()
            max_pixel_diff = max(max_pixel_diff, int(diff))
    n = len(files)
    print(f"{n} images, {args.tokens} tokens per tile, decoder {args.decoder or 'default'}")
    for device in models:
        enc, dec = n / seconds[(device, "encode")], 2 * n / seconds[(device, "decode")]
        print(f"{device}: encode {enc:.2f} images/s, decode {dec:.2f} images/s")
    print(f"encoder tokens that differ between CPU and CUDA: {differing_tokens} of {total_tokens}")
    print(f"largest pixel difference, CPU against CUDA decode of one file: {max_pixel_diff}/255")
    print("entropy-decoded tokens: " + ("all identical on both devices" if not bad else f"{bad} MISMATCHES"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
