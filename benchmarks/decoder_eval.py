"""Decoders of one token space side by side: quality, seams and decode cost from the same files.

    python benchmarks/decoder_eval.py [--images ../shared/data/train/bsds500/val] [--limit 40]
        [--decoders tiled grid runs/x/decoder.safetensors] [--tokens 16 32 64 128 256 512]
        [--metrics psnr-rgb ms-ssim haarpsi ssimulacra2] [--json out.json]

Every image is encoded once per token count with the default model; each decoder
decodes the same ``.vtk`` bytes, so the comparison is at equal bytes by
construction. Per decoder and token count it prints the mean bpp, the metrics
(``vtcodec.metrics``; default PSNR-RGB, MS-SSIM if pytorch-msssim is installed,
HaarPSI), the seam ratio (``vtcodec.seams``: the step across 128-pixel tile borders
against the step elsewhere, over the same ratio
in the original; 1.0 is the original's), the lattice ratio (the share of fine detail
that repeats in every token cell, over the original's: a texture template stamped into
each cell shows as a ratio far above 1), the flat-texture ratio (fine detail in the
smoothest quarter of the original's 8² blocks, over the original's: blur gives below 1,
texture laid over smooth surfaces above 1, whatever its phase), and decode ms per image with its ratio
to the ``tiled`` decoder (else the first one named) measured in the same run. It also counts the decoder's
multiply-accumulates per output pixel with forward hooks. Choose decoders on a
held-out folder; Kodak only reports.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import vtcodec
from vtcodec.bench import METRIC_LABELS, Metrics
from vtcodec.codec import tokenize
from vtcodec.decoders import decoder_names, load_decoder
from vtcodec.decoders.rendering import Decoder
from vtcodec.imageio import open_image
from vtcodec.models.tokenizer import AttentionBlock
from vtcodec.pipeline import pack_tokens, read_tokens
from vtcodec.seams import flat_texture_ratio, lattice_ratio, seam_ratio
from vtcodec.tile_grid import TileGrid

ROOT = Path(__file__).resolve().parent.parent
KEYS = {"psnr-rgb": "psnr", "ms-ssim": "msssim"}  # the JSON keys of earlier results files


def _format(metric: str, value: float) -> str:
    return f"{value:.2f}" if metric in ("psnr-rgb", "ssimulacra2") else f"{value:.4f}"


def macs_per_pixel(decoder: Decoder, grid: TileGrid, tokens: int) -> float:
    """Multiply-accumulates per output pixel for one decode of ``grid``: convolutions, linear layers, attention."""
    total = 0

    def hook(module: torch.nn.Module, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, torch.nn.Conv2d):
            kernel = module.kernel_size[0] * module.kernel_size[1]
            total += output.numel() * kernel * module.in_channels // module.groups
        elif isinstance(module, torch.nn.Linear):
            total += output.numel() * module.in_features
        else:  # AttentionBlock: scores q.k and the weighted sum of v, (h * w)^2 * C each
            b, c, h, w = output.shape
            total += 2 * b * (h * w) ** 2 * c

    kinds = (torch.nn.Conv2d, torch.nn.Linear, AttentionBlock)
    modules = [m for m in decoder.network.modules() if isinstance(m, kinds)]  # the encoder's do not run
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        ids = np.zeros((grid.count, decoder.network.max_tokens), dtype=np.int64)
        decoder.render(ids, np.full(grid.count, tokens), grid)
    finally:
        for h in handles:
            h.remove()
    return total / (grid.width * grid.height)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=str(ROOT.parent / "shared" / "data" / "train" / "bsds500" / "val"))
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--decoders", nargs="+", default=None, help="names or decoder files [every known one]")
    parser.add_argument("--tokens", type=int, nargs="+", default=[16, 32, 64, 128, 256, 512])
    parser.add_argument("--metrics", nargs="+", default=["psnr-rgb", "ms-ssim", "haarpsi"], help="of vtcodec.metrics")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    if (ROOT / "models").is_dir():
        vtcodec.add_model_dir(ROOT / "models")  # the tiled decoder, the baseline of the timings, is not shipped
    model = vtcodec.load_model()
    chosen = args.decoders or decoder_names(model)
    if "tiled" not in chosen and "tiled" in decoder_names(model):
        chosen = ["tiled", *chosen]
    baseline = chosen[0]  # the timings' reference: tiled where the token space has it
    decoders = {name: load_decoder(model, name) for name in chosen}
    files = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    files = files[: args.limit]
    if not files:
        raise SystemExit(f"no images in {args.images}")
    metrics = Metrics(args.metrics)
    keys = {m: KEYS.get(m, m) for m in metrics.names}  # JSON keys, as earlier results files have them
    tile = model.config.tile_size
    cell = model.config.cell_size
    fields = ("bpp", *keys.values(), "seam", "lattice", "flat_texture", "ms")
    stats = {(name, n): {f: [] for f in fields} for name in chosen for n in args.tokens}
    for path in files:
        image = open_image(path)
        pixels = np.asarray(image)
        tokens = tokenize(image, model)
        for n in args.tokens:
            n = min(n, model.config.max_tokens)
            data = pack_tokens(tokens, np.full(tokens.grid.count, n), model)
            stream = read_tokens(data, model)
            for name, decoder in decoders.items():
                t0 = time.perf_counter()
                decoded = decoder.render(stream.ids, stream.header.token_counts, tokens.grid)
                seconds = time.perf_counter() - t0
                scores = metrics(pixels, decoded)
                row = stats[(name, n)]
                row["bpp"].append(8 * len(data) / (image.width * image.height))
                for metric, key in keys.items():
                    row[key].append(scores[metric])
                row["seam"].append(seam_ratio(pixels, decoded, tile))
                row["lattice"].append(lattice_ratio(pixels, decoded, cell))
                row["flat_texture"].append(flat_texture_ratio(pixels, decoded))
                row["ms"].append(1000 * seconds)
        print(f"{path.name} done", flush=True)
    grid = TileGrid(768, 512, tile)
    cost = {name: macs_per_pixel(d, grid, 64) for name, d in decoders.items()}
    rows = []
    print(f"{len(files)} images from {args.images}; model {model.model_id.hex()}; every decoder reads the same files")
    labels = " | ".join(METRIC_LABELS.get(m, m) for m in keys)
    columns = f"seam ratio | lattice ratio | flat texture | decode ms | vs {baseline}"
    print(f"| decoder | tokens | bpp | {labels} | {columns} |")
    print("|---|---|---|" + "---|" * len(keys) + "---|---|---|---|---|")
    for n in args.tokens:
        base_ms = float(np.mean(stats[(baseline, n)]["ms"]))
        for name in chosen:
            row = stats[(name, n)]
            record = {"decoder": name, "tokens": n, "bpp": float(np.mean(row["bpp"]))}
            for key in keys.values():
                finite = [v for v in row[key] if np.isfinite(v)]
                record[key] = float(np.mean(finite)) if finite else None
            record |= {
                "seam": float(np.mean(row["seam"])),
                "lattice": float(np.mean(row["lattice"])),
                "flat_texture": float(np.mean(row["flat_texture"])),
                "decode_ms": float(np.mean(row["ms"])),
                "decode_ratio": float(np.mean(row["ms"])) / base_ms,
            }
            rows.append(record)
            values = " | ".join("n/a" if record[k] is None else _format(m, record[k]) for m, k in keys.items())
            print(
                f"| {name} | {n} | {record['bpp']:.4f} | {values} | {record['seam']:.2f} | {record['lattice']:.2f} | "
                f"{record['flat_texture']:.2f} | {record['decode_ms']:.0f} | {record['decode_ratio']:.2f}x |"
            )
    print(
        "decoder cost (768x512 at 64 tokens): " + ", ".join(f"{k} {v / 1e3:.1f} k MAC/pixel" for k, v in cost.items())
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "model_id": model.model_id.hex(),
                    "images": args.images,
                    "count": len(files),
                    "rows": rows,
                    "mac_per_pixel": cost,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
