"""What format version 2's layers cost against version 1, and what a cut at each layer holds.

    python benchmarks/format_overhead.py [--images ../shared/data/kodak] [--tokens 16 64 256]
        [--ladder 4 8 16 32 64 128 256 512] [--json results/format-overhead.json]

Every image is tokenized once with the default model; for each token count the same tokens
are written as version 1 (one payload) and version 2 (one range-coder segment per layer,
with its length in the header and a CRC-16 of its own). Prints the mean bytes of both and the
overhead, and, for version 2 files, where each layer ends (mean bytes): the sizes a server can
cut a file to with ``vtcodec truncate --cut`` or an HTTP range request. It also checks that
each cut decodes to the full file's token prefix and equals a fresh encode of that prefix.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import vtcodec
from vtcodec import container
from vtcodec.codec import tokenize
from vtcodec.imageio import open_image
from vtcodec.pipeline import DEFAULT_LADDER, Layout, pack_tokens, read_tokens

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=str(ROOT.parent / "shared" / "data" / "kodak"))
    parser.add_argument("--tokens", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--ladder", type=int, nargs="+", default=list(DEFAULT_LADDER))
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = vtcodec.load_model()
    layout = Layout(2, tuple(args.ladder))
    files = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    files = files[: args.limit]
    sizes = {n: {"v1": [], "v2": [], "cuts": []} for n in args.tokens}
    for path in files:
        image = open_image(path)
        tokens = tokenize(image, model)
        for n in args.tokens:
            counts = np.full(tokens.grid.count, n)
            one = pack_tokens(tokens, counts, model, layout=Layout(1))
            two = pack_tokens(tokens, counts, model, layout=layout)
            full = read_tokens(two, model)
            parsed = container.parse(two)
            for k, end in enumerate(parsed.header.layers[:-1], start=1):
                shorter = container.cut(parsed, k)
                assert shorter == pack_tokens(tokens, np.minimum(counts, end), model, layout=layout)
                assert (read_tokens(shorter, model).ids == full.ids[:, :end]).all()
            sizes[n]["v1"].append(len(one))
            sizes[n]["v2"].append(len(two))
            sizes[n]["cuts"].append(list(parsed.layer_offsets))
        print(f"{path.name} done", flush=True)
    rows = []
    print(f"{len(files)} images from {args.images}; model {model.model_id.hex()}; ladder {args.ladder}")
    print("| tokens | version 1 bytes | version 2 bytes | overhead | layers end at (mean bytes) |")
    print("|---|---|---|---|---|")
    for n in args.tokens:
        v1, v2 = float(np.mean(sizes[n]["v1"])), float(np.mean(sizes[n]["v2"]))
        cuts = [float(x) for x in np.mean(np.array(sizes[n]["cuts"]), axis=0)]
        ends = container.layer_ends(np.array([n]), tuple(args.ladder))
        rows.append(
            {
                "tokens": n,
                "v1_bytes": v1,
                "v2_bytes": v2,
                "overhead": v2 / v1 - 1,
                "layer_ends": ends,
                "cut_bytes": cuts,
            }
        )
        at = ", ".join(f"{e}: {c:.0f}" for e, c in zip(ends, cuts, strict=True))
        print(f"| {n} | {v1:.1f} | {v2:.1f} | {100 * (v2 / v1 - 1):+.2f} % | {at} |")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"images": args.images, "ladder": args.ladder, "rows": rows}, indent=1) + "\n"
        )


if __name__ == "__main__":
    main()
