"""Short from-scratch training probes of tokenizer variants: is the learning curve rising?

    python benchmarks/probes/architecture_probe.py --layout grid --steps 100 [--no-fsq] [--tail-drop] [--lr 1e-3]

Trains on 200 bsds500/train photos (random 128² crops, batch 16) and prints, every
50 steps, the training-batch PSNR and held-out PSNR (48 bsds500/val center crops)
decoding 16 and all tokens. The model card's architecture table comes from this.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import replace
from pathlib import Path

import torch

from vtcodec.models import TokenizerConfig, build_model
from vtcodec.training.data import CropSampler, center_crops, list_images, load_rgb
from vtcodec.training.losses import psnr

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "train" / "bsds500"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layout", choices=["grid", "global"], default="grid")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--no-fsq", action="store_true", help="tanh-bounded continuous tokens instead of FSQ")
    parser.add_argument("--tail-drop", action="store_true", help="log-uniform kept lengths, log-MSE loss")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images = [load_rgb(p, 128) for p in list_images([DATA / "train"])[:200]]
    val = center_crops([load_rgb(p, 128) for p in list_images([DATA / "val"])[:48]], 128)
    sampler = CropSampler(images, 128, 0.5, seed=0)
    torch.manual_seed(0)
    model = build_model(replace(TokenizerConfig(), layout=args.layout))
    if args.no_fsq:
        model.quantizer.forward = lambda z: (torch.tanh(z), None)  # type: ignore[method-assign]
    opt = torch.optim.AdamW(model.parameters(), args.lr)
    k = model.config.max_tokens
    start = time.time()
    for step in range(1, args.steps + 1):
        batch = sampler.sample(16)
        if args.tail_drop:
            lengths = torch.exp(torch.rand(16) * math.log(k + 1)).floor().clamp(1, k).long()
        else:
            lengths = torch.full((16,), k)
        for group in opt.param_groups:
            group["lr"] = args.lr * min(1.0, step / 50)
        rec = model(batch, lengths)
        mse = ((rec - batch) ** 2).flatten(1).mean(1)
        loss = torch.log(mse + 1e-5).mean() if args.tail_drop else mse.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0:
            with torch.no_grad():
                model.eval()
                held_out = [float(psnr(model(val, torch.full((48,), n)).clamp(0, 1), val).mean()) for n in (16, k)]
                model.train()
            train_psnr = float(psnr(rec.detach().clamp(0, 1), batch).mean())
            print(
                f"step {step} ({time.time() - start:.0f} s): train {train_psnr:.2f} dB, "
                f"held-out @16 {held_out[0]:.2f} dB, @{k} {held_out[1]:.2f} dB",
                flush=True,
            )


if __name__ == "__main__":
    main()
