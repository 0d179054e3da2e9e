"""Bytes per image under the three coders, and the decode-time cost of the context prior.

    python benchmarks/prior_comparison.py [--images ../shared/data/kodak] [--tokens 32 64 256] [--model PATH]

Per token setting (the same tokens for every coder, uniform counts), the mean
whole-file bytes per image with raw bit-packing (coder 0), the per-position tables
(coder 1) and the digit-context prior (coder 2), and the saving of coder 2 over
coder 1. Timing per image, 2 threads: entropy decoding under each prior, and the
whole decode of a coder-2 file (parse + entropy decoding + network), so that the
prior's share of decode time is ``context ms / decode ms``. Medians of 3 runs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import vtcodec
from vtcodec import container, entropy
from vtcodec.codec import decompress, tokenize
from vtcodec.imageio import open_image
from vtcodec.pipeline import TokenImage

ROOT = Path(__file__).resolve().parent.parent


def timed(fn, repeats: int = 3) -> tuple[object, float]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, 1e3 * float(np.median(times))


def file_bytes(tokens: TokenImage, counts: np.ndarray, coder: entropy.Coder, payload: bytes, model_id: bytes) -> bytes:
    g = tokens.grid
    return container.pack(container.Header(model_id, g.width, g.height, g.tile, counts, coder), payload)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    parser.add_argument("--tokens", type=int, nargs="+", default=[32, 64, 256])
    parser.add_argument("--model")
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()
    model = vtcodec.load_model(args.model)
    if model.context is None:
        raise SystemExit("this model has no digit-context prior")
    paths = sorted(Path(args.images).glob("*.png"))[: args.limit]
    images = [(open_image(p), tokenize(open_image(p), model)) for p in paths]
    print(f"model {model.model_id.hex()}, {len(paths)} images from {args.images}")
    print(
        "| tokens/tile | raw bytes | per-position bytes | context bytes | saving vs per-position "
        "| per-position decode ms | context decode ms | whole decode ms | context share |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for n in args.tokens:
        rows = []
        for _image, tokens in images:
            counts = np.full(tokens.grid.count, min(n, model.config.max_tokens))
            tiles, positions = entropy.stream_order(counts)
            raw = entropy.pack_raw(tokens.ids[tiles, positions], model.codebook_size)
            ranged = entropy.encode_range(tokens.ids, counts, model.prior)
            context = entropy.encode_context(tokens.ids, counts, model.context)
            _, range_ms = timed(lambda r=ranged, c=counts: entropy.decode_range(r, c, model.prior))
            _, context_ms = timed(lambda x=context, c=counts: entropy.decode_context(x, c, model.context))
            data = file_bytes(tokens, counts, entropy.Coder.CONTEXT, context, model.model_id)
            _, decode_ms = timed(lambda d=data: decompress(d, model=model))
            sizes = [
                len(file_bytes(tokens, counts, coder, payload, model.model_id))
                for coder, payload in (
                    (entropy.Coder.RAW, raw),
                    (entropy.Coder.RANGE, ranged),
                    (entropy.Coder.CONTEXT, context),
                )
            ]
            rows.append([*sizes, range_ms, context_ms, decode_ms])
        raw_b, pos_b, ctx_b, range_ms, context_ms, decode_ms = np.mean(rows, axis=0)
        print(
            f"| {n} | {raw_b:.0f} | {pos_b:.0f} | {ctx_b:.0f} | {100 * (1 - ctx_b / pos_b):.1f} % "
            f"| {range_ms:.1f} | {context_ms:.1f} | {decode_ms:.0f} | {100 * context_ms / decode_ms:.1f} % |",
            flush=True,
        )


if __name__ == "__main__":
    main()
