"""FSQ against VQ at equal codebook size, equal steps, same conv tokenizer (a short CPU run).

    python benchmarks/probes/quantizer_ablation.py [--steps 300] [--threads 1]

Trains the default architecture from scratch with each quantizer on the training
folders (all tokens kept, MSE, AdamW 4e-4), then reports held-out PSNR (bsds500/val
center crops) and codebook use: the share of the V codes seen and the perplexity
of the token distribution. VQ: nearest neighbour in a learned codebook of V
vectors, straight-through, codebook + 0.25 x commitment loss (van den Oord et al.).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vtcodec.models import TokenizerConfig, build_model
from vtcodec.training.data import CropSampler, center_crops, list_images, load_rgb
from vtcodec.training.losses import psnr

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "train"


class VQ(nn.Module):
    """Drop-in for FSQ: same (codes, ids) interface, plus an auxiliary loss."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.codebook_size = size
        self.codebook = nn.Parameter(torch.randn(size, dim) * 0.5)
        self.aux = torch.zeros(())

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = z.reshape(-1, z.shape[-1])
        ids = torch.cdist(flat, self.codebook).argmin(dim=1)
        q = self.codebook[ids].view_as(z)
        self.aux = ((q - z.detach()) ** 2).mean() + 0.25 * ((z - q.detach()) ** 2).mean()
        return z + (q - z).detach(), ids.view(z.shape[:-1])


def run(kind: str, steps: int, train: CropSampler, val: torch.Tensor) -> dict[str, float]:
    torch.manual_seed(0)
    model = build_model(TokenizerConfig())
    if kind == "vq":
        model.quantizer = VQ(model.codebook_size, model.quantizer.dim)  # type: ignore[assignment]
    opt = torch.optim.AdamW(model.parameters(), lr=4e-4)
    k = model.config.max_tokens
    start = time.time()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = 4e-4 * min(1.0, (step + 1) / 100)
        batch = train.sample(16)
        rec = model(batch, torch.full((16,), k))
        loss = ((rec - batch) ** 2).mean()
        if kind == "vq":
            loss = loss + model.quantizer.aux
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        codes, ids = model.quantizer(model._latent(val))
        keep = torch.ones(val.shape[0], k, dtype=torch.bool)
        rec = model._render(codes, keep).clamp(0, 1)
    counts = np.bincount(ids.flatten().numpy(), minlength=model.codebook_size)
    p = counts[counts > 0] / counts.sum()
    return {
        "val_psnr": float(psnr(rec, val).mean()),
        "codes_used": float((counts > 0).mean()),
        "perplexity": float(np.exp(-(p * np.log(p)).sum())),
        "minutes": (time.time() - start) / 60,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", choices=["fsq", "vq"], default=None, help="run one quantizer")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = [load_rgb(p, 128) for p in list_images([DATA / "bsds500" / "train", DATA / "imagenet-sample"])]
    val = center_crops([load_rgb(p, 128) for p in list_images([DATA / "bsds500" / "val"])], 128)
    print("| quantizer | steps | held-out PSNR (dB) | codes used | perplexity | minutes |")
    print("|---|---|---|---|---|---|")
    for kind in [args.only] if args.only else ["fsq", "vq"]:
        r = run(kind, args.steps, CropSampler(images, 128, 0.5, seed=0), val)
        print(
            f"| {kind} | {args.steps} | {r['val_psnr']:.2f} | {r['codes_used']:.3f} | {r['perplexity']:.0f} "
            f"| {r['minutes']:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
