"""Grey stays grey, flat stays flat: what the decoder gives for grey photos and constant colours.

Measures, with the shipped model and its default decoder, on held-out photos:

- colour photos: PSNR-RGB of the plain decode and of the decode shifted to the
  source's exact per-channel mean (what a 3-byte mean would buy);
- the same photos turned grey (mode L): PSNR-Y of the channel mean, of BT.601 luma
  (a bias toward the channel the eye weighs most), and of each with the exact mean;
- constant-colour images of several sizes: the largest error of any channel, plain and
  with the exact mean;
- small centre crops of the photos: PSNR-RGB plain and with the exact mean, and the
  file's bytes at 64 tokens (what the mean's 9 bytes weigh against).

The decodes here bypass the tone chunk: ``--tone`` off is what the codec did before it.

    python benchmarks/tone.py --images ../shared/data/train/bsds500/val --limit 20 --json results/tone.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

import vtcodec
from vtcodec.decoders import load_decoder
from vtcodec.pipeline import pack_tokens

LUMA = np.array([0.299, 0.587, 0.114])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))


def shift_to_mean(decoded: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``decoded`` moved so that each channel's mean is ``mean`` (then rounded and clipped)."""
    shift = mean - decoded.reshape(-1, decoded.shape[-1]).mean(axis=0)
    return np.clip(np.round(decoded + shift), 0, 255)


def decode(pixels: np.ndarray, tokens: int) -> tuple[np.ndarray, int]:
    """The plain decode of ``pixels`` at ``tokens`` (RGB, no tone applied) and the file's bytes without tone."""
    loaded = vtcodec.load_model()
    token_image = vtcodec.tokenize(pixels, loaded)
    counts = np.full(token_image.grid.count, tokens)
    data = pack_tokens(token_image, counts, loaded)
    decoded = load_decoder(loaded).render(token_image.ids, counts, token_image.grid)
    return decoded.astype(np.float64), len(data)


def photos(files: list[Path], token_counts: list[int]) -> dict:
    rows = {
        n: {k: [] for k in ("rgb", "rgb_mean", "grey_avg", "grey_luma", "grey_avg_mean", "grey_luma_mean")}
        for n in token_counts
    }
    for path in files:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        grey = np.asarray(Image.open(path).convert("L"))
        for n in token_counts:
            out, _ = decode(rgb, n)
            r = rows[n]
            r["rgb"].append(psnr(out, rgb))
            r["rgb_mean"].append(psnr(shift_to_mean(out, rgb.reshape(-1, 3).mean(axis=0)), rgb))
            out, _ = decode(np.repeat(grey[..., None], 3, axis=2), n)
            mean = np.array([grey.mean()])
            for name, plane in (("avg", out.mean(axis=2)), ("luma", out @ LUMA)):
                r[f"grey_{name}"].append(psnr(np.round(plane), grey))
                r[f"grey_{name}_mean"].append(psnr(shift_to_mean(plane[..., None], mean)[..., 0], grey))
    return {n: {k: round(float(np.mean(v)), 3) for k, v in r.items()} for n, r in rows.items()}


def flats(sizes: list[tuple[int, int]], colours: int, tokens: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for width, height in sizes:
        plain, fixed = [], []
        for colour in rng.integers(0, 256, size=(colours, 3)):
            pixels = np.broadcast_to(colour.astype(np.uint8), (height, width, 3)).copy()
            decoded, _ = decode(pixels, tokens)
            plain.append(np.abs(decoded - colour).max())
            fixed.append(np.abs(shift_to_mean(decoded, colour.astype(np.float64)) - colour).max())
        out[f"{width}x{height}"] = {"max_error": float(max(plain)), "max_error_mean": float(max(fixed))}
    return out


def crops(files: list[Path], sizes: list[int], tokens: int) -> dict:
    out = {}
    for size in sizes:
        plain, fixed, sizes_bytes = [], [], []
        for path in files:
            rgb = np.asarray(Image.open(path).convert("RGB"))
            top, left = (rgb.shape[0] - size) // 2, (rgb.shape[1] - size) // 2
            crop = np.ascontiguousarray(rgb[top : top + size, left : left + size])
            decoded, nbytes = decode(crop, tokens)
            plain.append(psnr(decoded, crop))
            fixed.append(psnr(shift_to_mean(decoded, crop.reshape(-1, 3).mean(axis=0)), crop))
            sizes_bytes.append(nbytes)
        out[f"{size}x{size}"] = {
            "psnr": round(float(np.mean(plain)), 3),
            "psnr_mean": round(float(np.mean(fixed)), 3),
            "bytes": round(float(np.mean(sizes_bytes)), 1),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--tokens", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--colours", type=int, default=8)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    files = sorted(p for p in args.images.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[: args.limit]
    result = {
        "images": str(args.images),
        "count": len(files),
        "photos": photos(files, args.tokens),
        "flats": flats([(1, 1), (8, 8), (64, 64), (300, 200)], args.colours, 64),
        "crops": crops(files, [1, 4, 16, 32, 64, 128], 64),
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
