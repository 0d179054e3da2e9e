"""Training loop for the tokenizer: random crops, tail-token drop, checkpoints, resume.

Run it as ``vtcodec train DATA_DIR... --out RUN_DIR`` (or ``python -m vtcodec.train``).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from vtcodec.data import CropSampler, center_crops, list_images, load_rgb
from vtcodec.errors import InputError
from vtcodec.models import TokenizerConfig, build_model


@dataclass(frozen=True)
class TrainConfig:
    """Optimization settings; saved in every checkpoint."""

    batch_size: int = 16
    lr: float = 4e-4
    warmup_steps: int = 300
    weight_decay: float = 1e-4
    full_length_prob: float = 0.2
    curriculum_steps: int = 600
    loss: str = "mse"
    min_scale: float = 0.5
    minutes: float = 60.0
    decay_fraction: float = 0.2
    log_every: int = 25
    eval_every: int = 250
    checkpoint_minutes: float = 4.0
    seed: int = 0


def sample_lengths(batch: int, max_tokens: int, full_prob: float, gen: torch.Generator) -> torch.Tensor:
    """Kept prefix lengths (tail-token drop): uniform on [1, K], and exactly K with ``full_prob``."""
    lengths = torch.randint(1, max_tokens + 1, (batch,), generator=gen)
    full = torch.rand(batch, generator=gen) < full_prob
    return torch.where(full, torch.full_like(lengths, max_tokens), lengths)


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample PSNR in dB for tensors in [0, 1]."""
    mse = ((x - y) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return -10 * torch.log10(mse)


def learning_rate(cfg: TrainConfig, step: int, elapsed_s: float) -> float:
    """Linear warm-up, constant, then linear decay to 10% over the last part of the wall-time budget."""
    lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup_steps)
    progress = elapsed_s / (cfg.minutes * 60.0)
    start = 1.0 - cfg.decay_fraction
    if progress > start:
        lr *= max(0.1, 1.0 - 0.9 * (progress - start) / cfg.decay_fraction)
    return lr


@torch.no_grad()
def evaluate(model: torch.nn.Module, crops: torch.Tensor, lengths: tuple[int, ...]) -> dict[str, float]:
    """Mean held-out PSNR at a few prefix lengths."""
    model.eval()
    ids = torch.cat([model.encode(chunk) for chunk in crops.split(32)])
    out = {}
    for n in lengths:
        rec = torch.cat([model.decode(chunk[:, :n]) for chunk in ids.split(32)])
        out[f"psnr@{n}"] = float(psnr(rec, crops).mean())
    model.train()
    return out


def save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def train(
    data_dirs: list[str],
    out_dir: str,
    val_dir: str | None,
    model_config: TokenizerConfig,
    cfg: TrainConfig,
    resume: bool = False,
    init_weights: str | None = None,
) -> Path:
    """Train (or resume) a tokenizer; returns the path of the last checkpoint."""
    torch.manual_seed(cfg.seed)
    run = Path(out_dir)
    run.mkdir(parents=True, exist_ok=True)
    ckpt_path = run / "last.ckpt"
    log_path = run / "log.jsonl"

    step, elapsed = 0, 0.0
    state = None
    if resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        model_config = TokenizerConfig.from_dict(state["model_config"])
        cfg = replace(TrainConfig(**state["train_config"]), minutes=cfg.minutes)
        step, elapsed = state["step"], state["elapsed"]

    model = build_model(model_config)
    if init_weights and state is None:
        from vtcodec.zoo import load_model

        model.load_state_dict(load_model(init_weights).model.state_dict())
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    train_files = list_images(data_dirs)
    if not train_files:
        raise InputError(f"no training images found in {', '.join(map(str, data_dirs))}")
    print(f"loading {len(train_files)} training images", flush=True)
    images = [load_rgb(p, model_config.tile_size) for p in train_files]
    sampler = CropSampler(images, model_config.tile_size, cfg.min_scale, seed=cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    val_crops = None
    if val_dir:
        val_images = [load_rgb(p, model_config.tile_size) for p in list_images([val_dir])]
        val_crops = center_crops(val_images, model_config.tile_size)

    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sampler.set_state(state["sampler_rng"])
        gen.set_state(state["length_rng"])
        torch.set_rng_state(state["torch_rng"])
        print(f"resumed at step {step}, {elapsed / 60:.1f} min trained", flush=True)

    def snapshot() -> dict:
        return {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "step": step,
            "elapsed": elapsed,
            "model_config": model_config.to_dict(),
            "train_config": cfg.__dict__,
            "sampler_rng": sampler.state(),
            "length_rng": gen.get_state(),
            "torch_rng": torch.get_rng_state(),
        }

    budget = cfg.minutes * 60.0
    eval_lengths = tuple(sorted({min(n, model_config.max_tokens) for n in (16, 64, model_config.max_tokens)}))
    last_ckpt = time.time()
    window: list[tuple[float, float, float]] = []
    model.train()
    while elapsed < budget:
        t0 = time.time()
        batch = sampler.sample(cfg.batch_size)
        # Curriculum: all tokens at first, so that the decoder learns to use them; then tail drop.
        full_prob = max(cfg.full_length_prob, 1.0 - step / max(1, cfg.curriculum_steps))
        lengths = sample_lengths(cfg.batch_size, model_config.max_tokens, full_prob, gen)
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, step, elapsed)
        rec = model(batch, lengths)
        mse = ((rec - batch) ** 2).flatten(1).mean(1)
        loss = torch.log(mse + 1e-5).mean() if cfg.loss == "log-mse" else mse.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        dt = time.time() - t0
        elapsed += dt
        window.append((loss.item(), float(psnr(rec.detach().clamp(0, 1), batch).mean()), cfg.batch_size / dt))
        if step % cfg.log_every == 0:
            loss_m, psnr_m, ips = (float(np.mean(v)) for v in zip(*window, strict=True))
            window.clear()
            record = {"step": step, "min": round(elapsed / 60, 2), "loss": loss_m, "psnr": psnr_m, "img_s": ips}
            if val_crops is not None and step % cfg.eval_every == 0:
                record.update(evaluate(model, val_crops, eval_lengths))
            print(json.dumps(record), flush=True)
            with log_path.open("a") as fh:
                fh.write(json.dumps(record) + "\n")
        if time.time() - last_ckpt > cfg.checkpoint_minutes * 60:
            save_checkpoint(ckpt_path, snapshot())
            last_ckpt = time.time()
    save_checkpoint(ckpt_path, snapshot())
    final = {"step": step, "min": round(elapsed / 60, 2), "final": True}
    if val_crops is not None:
        final.update(evaluate(model, val_crops, eval_lengths))
    print(json.dumps(final), flush=True)
    with log_path.open("a") as fh:
        fh.write(json.dumps(final) + "\n")
    return ckpt_path


@torch.no_grad()
def export_checkpoint(
    ckpt_path: str | Path,
    data_dirs: list[str],
    out_path: str | Path,
    prior_tiles: int = 8192,
    val_dir: str | None = None,
    seed: int = 1234,
) -> bytes:
    """Fit the token prior on training crops and write a shippable model file; returns its model id.

    With ``val_dir``, the prior's smoothing is chosen by the held-out code length there.
    """
    from vtcodec.prior import TokenPrior
    from vtcodec.zoo import save_model

    state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    model_config = TokenizerConfig.from_dict(state["model_config"])
    model = build_model(model_config)
    model.load_state_dict(state["model"])
    # Round-trip through fp16 first: the prior must describe the tokens of the shipped weights.
    model.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
    model.eval()

    def tokens_of(folders: list[str], count: int) -> np.ndarray:
        images = [load_rgb(p, model_config.tile_size) for p in list_images(folders)]
        sampler = CropSampler(images, model_config.tile_size, min_scale=0.5, seed=seed)
        return torch.cat([model.encode(sampler.sample(64)) for _ in range(-(-count // 64))]).numpy()

    train_tokens = tokens_of(data_dirs, prior_tiles)
    if val_dir:
        prior, backoff = TokenPrior.fit_best(train_tokens, tokens_of([val_dir], 1024), model.codebook_size)
        print(f"prior smoothing: backoff {backoff:g} pseudo-counts (best on {val_dir})", flush=True)
    else:
        prior = TokenPrior.fit(train_tokens, model.codebook_size)
    return save_model(model, prior, out_path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data", nargs="+")
    parser.add_argument("--out", required=True)
    parser.add_argument("--val")
    parser.add_argument("--config", help="JSON file with 'model' and 'train' sections")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--init", help="start from these weights (a model file), e.g. the shipped default")
    parser.add_argument("--prior-tiles", type=int, default=8192, help="training tiles to fit the prior on")
    parser.add_argument("--export-only", action="store_true", help="skip training: export RUN/last.ckpt")
    args = parser.parse_args(argv)
    model_cfg, train_cfg = TokenizerConfig(), TrainConfig(minutes=args.minutes)
    if args.config:
        spec = json.loads(Path(args.config).read_text())
        model_cfg = TokenizerConfig.from_dict(spec.get("model", {}))
        train_cfg = replace(train_cfg, **spec.get("train", {}))
    if args.init and not args.config:
        from vtcodec.zoo import load_model

        model_cfg = load_model(args.init).config
    if args.export_only:
        ckpt = Path(args.out) / "last.ckpt"
    else:
        ckpt = train(args.data, args.out, args.val, model_cfg, train_cfg, resume=args.resume, init_weights=args.init)
    out = Path(args.out) / "model.safetensors"
    model_id = export_checkpoint(ckpt, args.data, out, prior_tiles=args.prior_tiles, val_dir=args.val)
    print(f"exported {out} (model id {model_id.hex()})", flush=True)


if __name__ == "__main__":
    main()
