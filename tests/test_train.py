"""`vtcodec train` end to end on a tiny model: train, checkpoint, resume, export, encode with --model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import vtcodec
from vtcodec.cli import app
from vtcodec.training.config import TrainConfig
from vtcodec.training.losses import check_loss, reconstruction_loss
from vtcodec.training.schedule import sample_lengths

from .conftest import assert_one_line_error, random_image


def train(args: list[str]) -> None:
    """``vtcodec train ARGS``, through the command line's one option parser."""
    app(["train", *map(str, args)], standalone_mode=False)


def test_train_resume_export_and_use(tmp_path):
    data, config = _tiny_setup(tmp_path, {"batch_size": 4, "log_every": 2, "eval_every": 4, "warmup_steps": 5})
    run = tmp_path / "run"
    args = [str(data), "--out", str(run), "--val", str(data), "--config", str(config), "--prior-tiles", "64"]
    train([*args, "--minutes", "0.02"])
    first = torch.load(run / "last.ckpt", weights_only=False)
    assert first["step"] > 0
    train([*args, "--minutes", "0.2", "--resume"])
    second = torch.load(run / "last.ckpt", weights_only=False)
    assert second["step"] > first["step"]
    assert second["elapsed"] >= 0.2 * 60
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in log if "loss" in r)
    assert sum(1 for r in log if r.get("final")) == 2
    assert any("psnr@8" in r for r in log)

    model = vtcodec.load_model(run / "model.safetensors")
    assert model.config.tile_size == 32
    assert model.context is not None  # the export fits the digit-context prior too
    image = random_image(40, 33)
    encoded = vtcodec.compress(image, tokens=8, model=model)
    out = vtcodec.decompress(encoded, model=model)
    assert out.size == (40, 33)

    # --refit fits the priors again for the same weights: same tokens, a model file of its own.
    refit = tmp_path / "refit"
    train([str(data), "--out", str(refit), "--prior-tiles", "128", "--refit", str(run / "model.safetensors")])
    again = vtcodec.load_model(refit / "model.safetensors")
    assert again.model_id != model.model_id
    tiles = torch.rand(5, 3, 32, 32)
    assert torch.equal(again.model.encode(tiles), model.model.encode(tiles))


def _tiny_setup(tmp_path: Path, train: dict | None = None) -> tuple[Path, Path]:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(6):
        random_image(48, 40, seed=i).save(data / f"{i}.png")
    config = tmp_path / "tiny.json"
    config.write_text(
        json.dumps(
            {
                "model": {"tile_size": 32, "max_tokens": 8, "channels": [8, 8, 8, 8], "fsq_levels": [5, 3]},
                "train": train or {"batch_size": 4, "log_every": 1, "eval_every": 2, "warmup_steps": 2},
            }
        )
    )
    return data, config


def test_resume_continues_the_same_run_exactly(tmp_path):
    data, config = _tiny_setup(tmp_path)
    common = [str(data), "--config", str(config), "--prior-tiles", "64", "--minutes", "100"]
    train([*common, "--out", str(tmp_path / "straight"), "--steps", "6"])
    train([*common, "--out", str(tmp_path / "split"), "--steps", "3"])
    train([*common, "--out", str(tmp_path / "split"), "--steps", "6", "--resume"])
    straight = torch.load(tmp_path / "straight" / "last.ckpt", weights_only=False)
    split = torch.load(tmp_path / "split" / "last.ckpt", weights_only=False)
    assert straight["step"] == split["step"] == 6
    for name, tensor in straight["model"].items():
        assert torch.equal(tensor, split["model"][name]), name
    assert (tmp_path / "straight" / "model.safetensors").read_bytes() == (
        tmp_path / "split" / "model.safetensors"
    ).read_bytes()


def test_two_process_ddp_training_on_loopback(tmp_path):
    data, config = _tiny_setup(tmp_path)
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd += ["-m", "vtcodec.training", str(data), "--out", str(run), "--val", str(data), "--config", str(config)]
    cmd += ["--steps", "4", "--minutes", "100", "--prior-tiles", "64"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 rank(s)" in result.stdout + result.stderr
    state = torch.load(run / "last.ckpt", weights_only=False)
    assert state["step"] == 4
    assert (run / "rng.rank1.pt").exists()
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if not r.get("final")] == [1, 2, 3, 4]
    model = vtcodec.load_model(run / "model.safetensors")
    assert model.config.max_tokens == 8


def test_length_distributions():
    gen = torch.Generator().manual_seed(0)
    n, k = 40000, 512
    for dist, share_in_front in (("uniform", 0.5), ("front", 0.875)):
        lengths = sample_lengths(n, k, 0.1, gen, dist)
        assert lengths.min() >= 1 and lengths.max() <= k
        full = (lengths == k).float().mean().item()
        assert abs(full - (0.1 + 0.9 / k * (1 - share_in_front) * 2)) < 0.01
        assert abs((lengths <= k // 2).float().mean().item() - 0.9 * share_in_front) < 0.01
    with pytest.raises(ValueError):
        sample_lengths(4, k, 0.1, gen, "nope")


def test_mse_plus_msssim_loss_trains_and_checks_its_inputs(tmp_path, cli_run):
    pytest.importorskip("pytorch_msssim")
    from pytorch_msssim import ms_ssim

    target = torch.rand(2, 3, 128, 128)
    rec = (target + 0.1 * torch.randn_like(target)).requires_grad_()
    cfg = TrainConfig(loss="mse+msssim", msssim_weight=0.5)
    loss = reconstruction_loss(rec, target, cfg)
    mse = ((rec - target) ** 2).mean()
    expected = mse + 0.5 * (1 - ms_ssim(rec, target, data_range=1.0, win_size=7))
    assert torch.allclose(loss, expected)
    loss.backward()
    assert rec.grad is not None and rec.grad.abs().sum() > 0
    with pytest.raises(vtcodec.InputError, match="larger than 96"):
        check_loss(cfg, 32)
    with pytest.raises(vtcodec.InputError, match="unknown loss"):
        check_loss(TrainConfig(loss="l1"), 128)

    data, config = _tiny_setup(tmp_path)
    spec = json.loads(config.read_text())
    spec["model"].update(tile_size=128, max_tokens=16)
    spec["train"].update(batch_size=2, loss="mse+msssim")
    config.write_text(json.dumps(spec))
    for i in range(2):
        random_image(160, 140, seed=10 + i).save(data / f"big{i}.png")
    run = tmp_path / "run"
    code, _, err = cli_run("train", data, "--out", run, "--config", config, "--steps", 2, "--prior-tiles", 16)
    assert code == 0, err
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in log if "loss" in r)
    assert torch.load(run / "last.ckpt", weights_only=False)["train_config"]["loss"] == "mse+msssim"
    first = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").unlink()
    code, _, err = cli_run("train", data, "--out", run, "--export-only", "--prior-tiles", 16)
    assert code == 0, err
    assert (run / "model.safetensors").read_bytes() == first  # the export is deterministic

    spec["train"]["loss"] = "l1"
    config.write_text(json.dumps(spec))
    code, _, err = cli_run("train", data, "--out", tmp_path / "bad", "--config", config, "--steps", 1)
    assert_one_line_error(code, err)
    assert "unknown loss 'l1'" in err
