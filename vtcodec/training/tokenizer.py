"""The tokenizer's training loop: random crops, tail-token drop, checkpoints, resume, DDP under torchrun."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vtcodec.data import CropSampler, center_crops, list_images, load_rgb
from vtcodec.errors import InputError
from vtcodec.models import TokenizerConfig, build_model
from vtcodec.training.config import TrainConfig
from vtcodec.training.distributed import init_distributed
from vtcodec.training.export import append_log, save_checkpoint
from vtcodec.training.losses import check_loss, psnr, reconstruction_loss
from vtcodec.training.schedule import learning_rate, sample_lengths
from vtcodec.training.warm_start import warm_start


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


def train(
    data_dirs: list[str],
    out_dir: str,
    val_dir: str | None,
    model_config: TokenizerConfig,
    cfg: TrainConfig,
    resume: bool = False,
    init_weights: str | None = None,
) -> Path:
    """Train (or resume) a tokenizer; returns the path of the last checkpoint.

    Under torchrun every rank trains on its own shard of the image files and
    gradients are averaged (DDP); rank 0 logs, evaluates and writes checkpoints.
    """
    dist_info = init_distributed()
    device = dist_info.device
    torch.manual_seed(cfg.seed)
    run = Path(out_dir)
    run.mkdir(parents=True, exist_ok=True)
    ckpt_path = run / "last.ckpt"
    log_path = run / "log.jsonl"
    rng_path = run / f"rng.rank{dist_info.rank}.pt"  # extra ranks' random streams, for exact resumes

    step, elapsed = 0, 0.0
    state = None
    if resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        model_config = TokenizerConfig.from_dict(state["model_config"])
        cfg = replace(TrainConfig(**state["train_config"]), minutes=cfg.minutes, max_steps=cfg.max_steps)
        step, elapsed = state["step"], state["elapsed"]

    check_loss(cfg, model_config.tile_size)
    model = build_model(model_config)
    if init_weights and state is None:
        warm_start(model, init_weights)
    model.to(device)

    train_files = list_images(data_dirs)[dist_info.rank :: dist_info.world]
    if not train_files:
        raise InputError(f"no training images found in {', '.join(map(str, data_dirs))}")
    say = print if dist_info.main else (lambda *a, **k: None)
    say(f"loading {len(train_files)} training images per rank, {dist_info.world} rank(s) on {device}", flush=True)
    images = [load_rgb(p, model_config.tile_size) for p in train_files]
    sampler = CropSampler(images, model_config.tile_size, cfg.min_scale, seed=cfg.seed + 1000 * dist_info.rank)
    gen = torch.Generator().manual_seed(cfg.seed + 1 + 1000 * dist_info.rank)
    val_crops = None
    if val_dir and dist_info.main:
        val_images = [load_rgb(p, model_config.tile_size) for p in list_images([val_dir])]
        val_crops = center_crops(val_images, model_config.tile_size).to(device)

    if state is not None:
        model.load_state_dict(state["model"])
        streams = state if dist_info.main else torch.load(rng_path, weights_only=False)
        sampler.set_state(streams["sampler_rng"])
        gen.set_state(streams["length_rng"])
        torch.set_rng_state(streams["torch_rng"])
        say(f"resumed at step {step}, {elapsed / 60:.1f} min trained", flush=True)
    net: torch.nn.Module = model
    if dist_info.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if state is not None:
        opt.load_state_dict(state["optimizer"])

    def streams() -> dict:
        return {"sampler_rng": sampler.state(), "length_rng": gen.get_state(), "torch_rng": torch.get_rng_state()}

    def checkpoint() -> None:
        if dist_info.main:
            save_checkpoint(
                ckpt_path,
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "step": step,
                    "elapsed": elapsed,
                    "model_config": model_config.to_dict(),
                    "train_config": cfg.__dict__,
                    **streams(),
                },
            )
        else:
            save_checkpoint(rng_path, streams())

    def log(record: dict) -> None:
        append_log(log_path, record, bar)

    budget = cfg.minutes * 60.0
    eval_lengths = tuple(sorted({min(n, model_config.max_tokens) for n in (16, 64, 128, 256, model_config.max_tokens)}))
    last_ckpt = time.time()
    window: list[tuple[float, float, float]] = []
    net.train()
    stop_file = run / "STOP"
    bar = tqdm(
        total=round(budget),
        initial=min(round(elapsed), round(budget)),
        unit="s",
        disable=not dist_info.main,
        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} s [{elapsed}<{remaining}{postfix}]",
        dynamic_ncols=True,
    )
    while True:
        done = elapsed >= budget or stop_file.exists() or (cfg.max_steps is not None and step >= cfg.max_steps)
        if dist_info.world > 1:  # every rank stops at the same step
            flag = torch.tensor([float(done)], device=device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            done = bool(flag.item())
        if done:
            break
        t0 = time.time()
        batch = sampler.sample(cfg.batch_size).to(device)
        # Curriculum: all tokens at first, so that the decoder learns to use them; then tail drop.
        full_prob = max(cfg.full_length_prob, 1.0 - step / max(1, cfg.curriculum_steps))
        lengths = sample_lengths(cfg.batch_size, model_config.max_tokens, full_prob, gen, cfg.length_dist).to(device)
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, step, elapsed)
        rec = net(batch, lengths)
        loss = reconstruction_loss(rec, batch, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        dt = time.time() - t0
        elapsed += dt
        images_per_s = cfg.batch_size * dist_info.world / dt
        window.append((loss.item(), float(psnr(rec.detach().clamp(0, 1), batch).mean()), images_per_s))
        bar.update(min(round(elapsed), round(budget)) - bar.n)
        if step % cfg.log_every == 0:
            loss_m, psnr_m, ips = (float(np.mean(v)) for v in zip(*window, strict=True))
            window.clear()
            bar.set_postfix_str(f"step {step}, loss {loss_m:.4f}, PSNR {psnr_m:.2f} dB, {ips:.1f} img/s")
            if dist_info.main:
                record = {"step": step, "min": round(elapsed / 60, 2), "loss": loss_m, "psnr": psnr_m, "img_s": ips}
                if val_crops is not None and step % cfg.eval_every == 0:
                    record.update(evaluate(model, val_crops, eval_lengths))
                    net.train()
                log(record)
        if time.time() - last_ckpt > cfg.checkpoint_minutes * 60:
            checkpoint()
            last_ckpt = time.time()
    checkpoint()
    bar.close()
    if dist_info.main:
        final = {"step": step, "min": round(elapsed / 60, 2), "final": True}
        if val_crops is not None:
            final.update(evaluate(model, val_crops, eval_lengths))
        log(final)
    if dist_info.world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return ckpt_path
