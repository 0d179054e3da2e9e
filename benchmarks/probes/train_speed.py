"""Training and decoding speed of model configs on this machine, before scaling a model.

    python benchmarks/probes/train_speed.py configs/v7.json configs/v8.json [--set decoder_blocks=2] [--steps 8]

For each config (``--set`` overrides a model field in all of them): parameters,
training images/s (forward, backward and AdamW on batch-16 random 128² crops with
random tail-drop lengths; the first 2 steps are warm-up and not counted) and decode
ms/tile (batch of 24 tiles, all tokens).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from vtcodec.models import TokenizerConfig, build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="+")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=INT", help="override a model field")
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    overrides = {k: int(v) for k, v in (item.split("=", 1) for item in args.set)}
    print("| config | overrides | parameters (M) | train img/s | decode ms/tile |")
    print("|---|---|---|---|---|")
    for path in args.configs:
        torch.manual_seed(0)
        config = TokenizerConfig.from_dict({**json.loads(Path(path).read_text())["model"], **overrides})
        model = build_model(config)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        tiles = torch.rand(16, 3, config.tile_size, config.tile_size)
        times = []
        for _ in range(args.steps + 2):
            lengths = torch.randint(1, config.max_tokens + 1, (16,))
            start = time.perf_counter()
            loss = ((model(tiles, lengths) - tiles) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - start)
        model.eval()
        ids = model.encode(torch.rand(24, 3, config.tile_size, config.tile_size))
        start = time.perf_counter()
        for _ in range(3):
            model.decode(ids)
        decode_ms = (time.perf_counter() - start) / 3 / 24 * 1000
        params = sum(p.numel() for p in model.parameters()) / 1e6
        speed = 16 * args.steps / sum(times[2:])
        print(f"| {path} | {' '.join(args.set) or '-'} | {params:.2f} | {speed:.1f} | {decode_ms:.1f} |", flush=True)


if __name__ == "__main__":
    main()
