"""How much do tokens depend on their neighbours? Held-out code lengths under context models.

    python benchmarks/probes/context_entropy.py [--model PATH] [--train-tiles 8192] [--test-tiles 2048]

Tokens of random training crops (bsds500 train/test + imagenet-sample) fit count
tables; tokens of held-out crops (bsds500/val) are scored, in bits per token:

- ``per-position``: the shipped prior (one table per sequence position);
- ``+ <context>``: per-position table refined by a context class, with the
  per-position probability as the back-off (``(n[c, t] + a p_pos(t)) / (n[c] + a)``,
  ``a`` picked on half of the held-out tiles, reported on the other half).

Contexts (grid layout: token ``g * cells + p``; cell neighbours in the raster grid):
``prev-group``: the same cell's token in the previous group; ``left`` / ``above``:
the neighbouring cell's token in the same group; ``previous``: the previous token
in the sequence. Classes: the whole token (``full``), or its first FSQ digit(s).
Kodak is not used.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import vtcodec
from vtcodec.training.data import CropSampler, list_images, load_rgb

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "train"


def tokens_of(model, folders: list[Path], count: int, seed: int) -> np.ndarray:
    images = [load_rgb(p, model.config.tile_size) for p in list_images(folders)]
    sampler = CropSampler(images, model.config.tile_size, min_scale=0.5, seed=seed)
    with torch.no_grad():
        return torch.cat([model.model.encode(sampler.sample(64)) for _ in range(-(-count // 64))]).numpy()


def context_tokens(ids: np.ndarray, model, kind: str) -> np.ndarray:
    """The context token of every position (-1 where there is none)."""
    k = ids.shape[1]
    out = np.full_like(ids, -1)
    net = model.model
    if kind == "previous":
        out[:, 1:] = ids[:, :-1]
        return out
    side = net.side
    cells = side * side
    order = net.order.numpy()  # sequence cell index -> raster cell index
    inverse = np.argsort(order)
    for j in range(k):
        g, p = divmod(j, cells)
        if kind == "prev-group":
            if g > 0:
                out[:, j] = ids[:, j - cells]
            continue
        y, x = divmod(int(order[p]), side)
        ny, nx = (y, x - 1) if kind == "left" else (y - 1, x)
        if 0 <= ny and 0 <= nx:
            q = int(inverse[ny * side + nx])
            if q < p:  # only contexts that come earlier in the stream are usable
                out[:, j] = ids[:, g * cells + q]
    return out


def classes(ctx: np.ndarray, levels: list[int], digits: int | None) -> np.ndarray:
    """Context class: the whole token (``digits=None``) or its first ``digits`` FSQ digits; -1 -> class 0."""
    if digits is None:
        return ctx + 1
    basis = np.cumprod([1, *levels[:-1]])
    value = np.zeros_like(ctx)
    scale = 1
    for d in range(digits):
        value += ((ctx // basis[d]) % levels[d]) * scale
        scale *= levels[d]
    return np.where(ctx < 0, 0, value + 1)


def per_position(train: np.ndarray, vocab: int, alpha: float = 0.5) -> np.ndarray:
    counts = np.stack([np.bincount(train[:, j], minlength=vocab) for j in range(train.shape[1])]) + alpha
    return counts / counts.sum(1, keepdims=True)


def bits(prob: np.ndarray) -> float:
    return float(-np.log2(prob).mean())


def score(train, test, train_ctx, test_ctx, base, vocab, shared_groups: int) -> tuple[float, float]:
    """Held-out bits/token of the context model (tables shared within ``shared_groups`` spans of positions)."""
    k = train.shape[1]
    span = k // shared_groups
    n_cls = int(max(train_ctx.max(), test_ctx.max())) + 1
    table = {}
    for s in range(shared_groups):
        cols = slice(s * span, (s + 1) * span)
        key = train_ctx[:, cols].ravel() * vocab + train[:, cols].ravel()
        table[s] = np.bincount(key, minlength=n_cls * vocab).reshape(n_cls, vocab)
    half = test.shape[0] // 2
    results = {}
    for a in (1.0, 4.0, 16.0, 64.0, 256.0):
        probs = np.empty(test.shape)
        for j in range(k):
            t = table[j // span]
            c, tok = test_ctx[:, j], test[:, j]
            probs[:, j] = (t[c, tok] + a * base[j, tok]) / (t[c].sum(1) + a)
        results[a] = (bits(probs[:half]), bits(probs[half:]))
    best = min(results, key=lambda a: results[a][0])
    return results[best][1], best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model")
    parser.add_argument("--train-tiles", type=int, default=8192)
    parser.add_argument("--test-tiles", type=int, default=2048)
    args = parser.parse_args()
    model = vtcodec.load_model(args.model)
    vocab, levels = model.codebook_size, list(model.config.fsq_levels)
    folders = [DATA / "bsds500" / "train", DATA / "bsds500" / "test", DATA / "imagenet-sample"]
    train = tokens_of(model, folders, args.train_tiles, seed=1)
    test = tokens_of(model, [DATA / "bsds500" / "val"], args.test_tiles, seed=2)
    base = per_position(train, vocab)
    half = test.shape[0] // 2
    baseline = bits(base[np.arange(test.shape[1]), test[half:]])
    groups = model.model.groups if model.config.layout == "grid" else 1
    print(
        f"model {model.model_id.hex()}: K={test.shape[1]}, V={vocab} (raw {np.log2(vocab):.2f} bits), "
        f"{args.train_tiles} train / {args.test_tiles} held-out tiles"
    )
    print("| context | classes | bits/token | saving vs per-position |")
    print("|---|---|---|---|")
    print(f"| per-position (shipped) | 1 | {baseline:.3f} | - |")
    kinds = ["previous"] + (["prev-group", "left", "above"] if model.config.layout == "grid" else [])
    for kind in kinds:
        tr, te = context_tokens(train, model, kind), context_tokens(test, model, kind)
        for digits in (1, 2, None):
            label = "whole token" if digits is None else f"first {digits} digit(s)"
            ctr, cte = classes(tr, levels, digits), classes(te, levels, digits)
            value, _ = score(train, test, ctr, cte, base, vocab, groups)
            print(f"| {kind} | {label} | {value:.3f} | {100 * (1 - value / baseline):.1f} % |", flush=True)


if __name__ == "__main__":
    main()
