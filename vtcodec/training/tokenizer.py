"""The tokenizer's training loop: random crops, tail-token drop, checkpoints, resume, DDP under torchrun."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch

from vtcodec.errors import InputError
from vtcodec.models import TokenizerConfig, build_model
from vtcodec.training.config import TrainConfig
from vtcodec.training.data import CropSampler, center_crops, list_images, load_rgb
from vtcodec.training.distributed import init_distributed
from vtcodec.training.export import load_checkpoint, save_checkpoint
from vtcodec.training.loop import RunLog, TimedCheckpoints, random_streams, restore_streams, should_stop
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


def _saved_run(
    ckpt_path: Path, resume: bool, model_config: TokenizerConfig, cfg: TrainConfig
) -> tuple[dict | None, TokenizerConfig, TrainConfig]:
    """The checkpoint to resume from (None for a fresh run), and the network and settings it was made with."""
    if not (resume and ckpt_path.exists()):
        return None, model_config, cfg
    state = load_checkpoint(ckpt_path)
    cfg = replace(TrainConfig(**state["train_config"]), minutes=cfg.minutes, max_steps=cfg.max_steps)
    return state, TokenizerConfig.from_dict(state["model_config"]), cfg


def _training_data(
    data_dirs: list[str], val_dir: str | None, model_config: TokenizerConfig, cfg: TrainConfig, dist_info
) -> tuple[CropSampler, torch.Generator, torch.Tensor | None]:
    """This rank's crop sampler and prefix-length generator, and (rank 0) the held-out crops."""
    train_files = list_images(data_dirs)[dist_info.rank :: dist_info.world]
    if not train_files:
        raise InputError(f"no training images found in {', '.join(map(str, data_dirs))}")
    if dist_info.main:
        print(f"loading {len(train_files)} training images per rank, {dist_info.world} rank(s) on {dist_info.device}")
    tile = model_config.tile_size
    images = [load_rgb(p, tile) for p in train_files]
    sampler = CropSampler(images, tile, cfg.min_scale, seed=cfg.seed + 1000 * dist_info.rank)
    gen = torch.Generator().manual_seed(cfg.seed + 1 + 1000 * dist_info.rank)
    val_crops = None
    if val_dir and dist_info.main:
        val_crops = center_crops([load_rgb(p, tile) for p in list_images([val_dir])], tile).to(dist_info.device)
    return sampler, gen, val_crops


def _all_ranks_stop(done: bool, dist_info) -> bool:
    """Every rank stops at the same step: the stop flag is reduced over the ranks."""
    if dist_info.world == 1:
        return done
    flag = torch.tensor([float(done)], device=dist_info.device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
    return bool(flag.item())


def _network(
    model_config: TokenizerConfig, cfg: TrainConfig, state: dict | None, init_weights: str | None, device
) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """The network and its optimizer: from the checkpoint ``state``, else warm-started from ``init_weights``."""
    check_loss(cfg, model_config.tile_size)
    model = build_model(model_config)
    if state is not None:
        model.load_state_dict(state["model"])
    elif init_weights:
        warm_start(model, init_weights)
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if state is not None:
        opt.load_state_dict(state["optimizer"])
    return model, opt


def _train_step(
    net: torch.nn.Module, opt: torch.optim.Optimizer, batch: torch.Tensor, lengths: torch.Tensor, cfg: TrainConfig
) -> tuple[float, float]:
    """One optimizer step on a batch with its prefix lengths; the loss and the batch's mean PSNR."""
    rec = net(batch, lengths)
    loss = reconstruction_loss(rec, batch, cfg)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()
    return loss.item(), float(psnr(rec.detach().clamp(0, 1), batch).mean())


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
    rng_path = run / f"rng.rank{dist_info.rank}.pt"  # extra ranks' random streams, for exact resumes
    state, model_config, cfg = _saved_run(ckpt_path, resume, model_config, cfg)
    step, elapsed = (state["step"], state["elapsed"]) if state is not None else (0, 0.0)

    model, opt = _network(model_config, cfg, state, init_weights, device)
    sampler, gen, val_crops = _training_data(data_dirs, val_dir, model_config, cfg, dist_info)
    if state is not None:
        restore_streams(state if dist_info.main else load_checkpoint(rng_path), sampler, gen)
        if dist_info.main:
            print(f"resumed at step {step}, {elapsed / 60:.1f} min trained", flush=True)
    net: torch.nn.Module = model
    if dist_info.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)

    def checkpoint() -> None:
        if not dist_info.main:
            save_checkpoint(rng_path, random_streams(sampler, gen))
            return
        run_state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "elapsed": elapsed}
        configs = {"model_config": model_config.to_dict(), "train_config": cfg.__dict__}
        save_checkpoint(ckpt_path, {**run_state, **configs, **random_streams(sampler, gen)})

    budget = cfg.minutes * 60.0
    eval_lengths = tuple(sorted({min(n, model_config.max_tokens) for n in (16, 64, 128, 256, model_config.max_tokens)}))
    progress = RunLog(run / "log.jsonl", budget, elapsed, cfg.log_every, enabled=dist_info.main)
    checkpoints = TimedCheckpoints(cfg.checkpoint_minutes, checkpoint)
    net.train()
    while not _all_ranks_stop(should_stop(run, elapsed, budget, step, cfg.max_steps), dist_info):
        t0 = time.time()
        batch = sampler.sample(cfg.batch_size).to(device)
        # Curriculum: all tokens at first, so that the decoder learns to use them; then tail drop.
        full_prob = max(cfg.full_length_prob, 1.0 - step / max(1, cfg.curriculum_steps))
        lengths = sample_lengths(cfg.batch_size, model_config.max_tokens, full_prob, gen, cfg.length_dist).to(device)
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, step, elapsed)
        loss, quality = _train_step(net, opt, batch, lengths, cfg)
        step += 1
        dt = time.time() - t0
        elapsed += dt
        record = progress.step(step, elapsed, loss=loss, psnr=quality, img_s=cfg.batch_size * dist_info.world / dt)
        if record is not None:
            if val_crops is not None and step % cfg.eval_every == 0:
                record.update(evaluate(model, val_crops, eval_lengths))
                net.train()
            progress.write(record)
        checkpoints.tick()
    checkpoint()
    progress.finish(step, elapsed, evaluate(model, val_crops, eval_lengths) if val_crops is not None else {})
    if dist_info.world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return ckpt_path
