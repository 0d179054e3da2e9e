"""`vtcodec train` end to end on a tiny model: train, checkpoint, resume, export, encode with --model."""

import json

import numpy as np
import torch

import vtcodec
from vtcodec import train as training

from .conftest import random_image


def test_train_resume_export_and_use(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(6):
        random_image(48, 40, seed=i).save(data / f"{i}.png")
    config = tmp_path / "tiny.json"
    config.write_text(
        json.dumps(
            {
                "model": {"tile_size": 32, "max_tokens": 8, "channels": [8, 8, 8, 8], "fsq_levels": [5, 3]},
                "train": {"batch_size": 4, "log_every": 2, "eval_every": 4, "warmup_steps": 5},
            }
        )
    )
    run = tmp_path / "run"
    args = [str(data), "--out", str(run), "--val", str(data), "--config", str(config), "--prior-tiles", "64"]
    training.main([*args, "--minutes", "0.02"])
    first = torch.load(run / "last.ckpt", weights_only=False)
    assert first["step"] > 0
    training.main([*args, "--minutes", "0.2", "--resume"])
    second = torch.load(run / "last.ckpt", weights_only=False)
    assert second["step"] > first["step"]
    assert second["elapsed"] >= 0.2 * 60
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in log if "loss" in r)
    assert sum(1 for r in log if r.get("final")) == 2
    assert any("psnr@8" in r for r in log)

    model = vtcodec.load_model(run / "model.safetensors")
    assert model.config.tile_size == 32
    image = random_image(40, 33)
    out = vtcodec.decompress(vtcodec.compress(image, tokens=8, model=model), model=model)
    assert out.size == (40, 33)
