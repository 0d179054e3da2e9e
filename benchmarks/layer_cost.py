"""What progressive layers would cost: bytes of a layered file against today's one-payload file.

A layered file (the progressive-format issue) codes each range of token positions as its own
range-coder segment, with its length and its own check, so that any byte prefix ending on a layer
boundary is a smaller valid picture. Each segment pays the range coder's flush, a length varint
and a check. This measures that cost on Kodak for several ladders of layer boundaries, at uniform
token counts, with the shipped model and its digit-context prior; nothing is written.

    python benchmarks/layer_cost.py --images ../shared/data/kodak --tokens 16 64 256 --json results/layer-cost.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

import vtcodec
from vtcodec.container import write_varint
from vtcodec.entropy import encode_context
from vtcodec.pipeline import pack_tokens

LADDERS = {
    "doubling from 1": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
    "doubling from 4": [4, 8, 16, 32, 64, 128, 256, 512],
    "doubling from 8": [8, 16, 32, 64, 128, 256, 512],
    "quadrupling from 4": [4, 16, 64, 256, 512],
    "1, 4, then doubling from 16": [1, 4, 16, 32, 64, 128, 256, 512],
}
CHECKS = {"CRC-32": 4, "CRC-16": 2}


def segments(ids: np.ndarray, counts: np.ndarray, context, ladder: list[int]) -> list[int]:
    """Bytes of each layer's range-coded segment (layers past the longest count are absent)."""
    sizes, start = [], 0
    for stop in ladder:
        if start >= int(counts.max()):
            break
        sizes.append(len(encode_context(ids, counts, context, range(start, stop))))
        start = stop
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=Path("../shared/data/kodak"))
    parser.add_argument("--tokens", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--limit", type=int)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model = vtcodec.load_model()
    files = sorted(p for p in args.images.iterdir() if p.suffix.lower() == ".png")[: args.limit]
    tokenized = [vtcodec.tokenize(np.asarray(Image.open(p).convert("RGB")), model) for p in files]
    result = {"images": str(args.images), "count": len(files), "rows": []}
    print("| tokens | v1 bytes (mean) | ladder | layers | check | v2 bytes (mean) | cost |")
    print("|---|---|---|---|---|---|---|")
    for n in args.tokens:
        v1 = []
        layered: dict[tuple[str, str], list[int]] = {}
        layer_count = {}
        for tokens in tokenized:
            counts = np.full(tokens.grid.count, n)
            whole = len(pack_tokens(tokens, counts, model))
            v1.append(whole)
            payload = len(encode_context(tokens.ids, counts, model.context))
            for name, ladder in LADDERS.items():
                sizes = segments(tokens.ids, counts, model.context, ladder)
                layer_count[name] = len(sizes)
                for check, check_bytes in CHECKS.items():
                    # v1's payload-length varint and CRC-32 go; the header gets its own check, a layer count,
                    # and each layer its length, data and check
                    body = sum(len(write_varint(s)) + s + check_bytes for s in sizes)
                    header = len(write_varint(len(sizes))) + check_bytes
                    v2 = whole - payload - len(write_varint(payload)) - 4 + header + body
                    layered.setdefault((name, check), []).append(v2)
        base = float(np.mean(v1))
        for (name, check), sizes in layered.items():
            mean = float(np.mean(sizes))
            cost = 100 * (mean / base - 1)
            row = {"tokens": n, "v1": base, "ladder": name, "layers": layer_count[name], "check": check, "v2": mean}
            result["rows"].append({**row, "cost_percent": round(cost, 2)})
            print(f"| {n} | {base:.0f} | {name} | {layer_count[name]} | {check} | {mean:.0f} | {cost:+.2f} % |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
