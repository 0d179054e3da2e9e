"""Gradient balance of the ``mse+msssim`` training loss: how strongly does each term pull?

    python benchmarks/probes/loss_balance.py [--model PATH] [--crops 16] [--tokens 16 64 256]

For held-out bsds500/val center crops (128²) decoded from a prefix of n tokens, prints
the MSE, 1 - MS-SSIM (``vtcodec.training.losses.msssim_dissimilarity``, the loss's term), the
norms of their gradients over the decoder's weights, and the weight that would make
the MS-SSIM term's gradient equal to the MSE's (``msssim_weight`` in the train config).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import vtcodec
from vtcodec.models import build_model
from vtcodec.training.data import center_crops, list_images, load_rgb
from vtcodec.training.losses import msssim_dissimilarity

VAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "train" / "bsds500" / "val"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--crops", type=int, default=16)
    parser.add_argument("--tokens", type=int, nargs="+", default=[16, 64, 256])
    args = parser.parse_args()
    torch.set_num_threads(2)
    source = vtcodec.load_model(args.model)
    model = build_model(source.config)  # a float32, trainable copy
    model.load_state_dict({k: v.float() for k, v in source.model.state_dict().items()})
    tile = source.config.tile_size
    crops = center_crops([load_rgb(p, tile) for p in list_images([VAL])[: args.crops]], tile)
    params = list(model.decoder.parameters())
    print("| tokens | MSE | 1 - MS-SSIM | MSE gradient norm | MS-SSIM gradient norm | equal-gradient weight |")
    print("|---|---|---|---|---|---|")
    for n in args.tokens:
        rec = model(crops, torch.full((len(crops),), n))
        mse = ((rec - crops) ** 2).mean()
        dissimilarity = msssim_dissimilarity(rec, crops)
        norms = []
        for term in (mse, dissimilarity):
            grads = torch.autograd.grad(term, params, retain_graph=True)
            norms.append(float(torch.sqrt(sum((g**2).sum() for g in grads))))
        print(
            f"| {n} | {mse.item():.5f} | {dissimilarity.item():.4f} | {norms[0]:.5f} | {norms[1]:.4f} "
            f"| {norms[0] / norms[1]:.4f} |"
        )


if __name__ == "__main__":
    main()
