"""Training loop for the tokenizer: random crops, tail-token drop, checkpoints, resume.

Run it as ``vtcodec train DATA_DIR... --out RUN_DIR`` (or ``python -m vtcodec.train``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

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
    length_dist: str = "uniform"
    curriculum_steps: int = 600
    loss: str = "mse"
    msssim_weight: float = 0.025
    min_scale: float = 0.5
    minutes: float = 60.0
    max_steps: int | None = None
    decay_fraction: float = 0.2
    log_every: int = 25
    eval_every: int = 250
    checkpoint_minutes: float = 4.0
    seed: int = 0


def sample_lengths(
    batch: int, max_tokens: int, full_prob: float, gen: torch.Generator, dist: str = "uniform"
) -> torch.Tensor:
    """Kept prefix lengths (tail-token drop): exactly K with ``full_prob``.

    Otherwise ``uniform`` on [1, K]; ``mixed``: half uniform, half log-uniform (more short prefixes);
    ``front``: three quarters uniform on [1, K/2], one quarter uniform on [1, K] (the
    low-rate half of the sequence, where the codec's targets lie, gets most of the weight).
    """
    lengths = torch.randint(1, max_tokens + 1, (batch,), generator=gen)
    if dist == "front":
        front = torch.randint(1, max(max_tokens // 2, 1) + 1, (batch,), generator=gen)
        lengths = torch.where(torch.rand(batch, generator=gen) < 0.75, front, lengths)
    elif dist == "mixed":
        log_uniform = torch.exp(torch.rand(batch, generator=gen) * np.log(max_tokens + 1)).long().clamp(1, max_tokens)
        lengths = torch.where(torch.rand(batch, generator=gen) < 0.5, lengths, log_uniform)
    elif dist != "uniform":
        raise ValueError(f"unknown length distribution {dist!r}")
    full = torch.rand(batch, generator=gen) < full_prob
    return torch.where(full, torch.full_like(lengths, max_tokens), lengths)


LOSSES = ("mse", "log-mse", "mse+msssim")
MSSSIM_WINDOW = 7  # pixels; pytorch-msssim needs a side longer than (window - 1) * 16 for its five scales


def msssim_dissimilarity(rec: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - MS-SSIM of a batch in [0, 1], as the ``mse+msssim`` loss uses it (needs pytorch-msssim)."""
    from pytorch_msssim import ms_ssim

    return 1 - ms_ssim(rec, target, data_range=1.0, win_size=MSSSIM_WINDOW)


def reconstruction_loss(rec: torch.Tensor, target: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """The training loss of a batch in [0, 1]: ``cfg.loss`` is one of ``LOSSES``.

    ``mse+msssim`` adds ``cfg.msssim_weight * msssim_dissimilarity`` (a 7-pixel window,
    so tiles of 128 pixels fit its five scales) to the MSE; the default weight
    gives both terms about equal gradients at the v3 model's operating point
    (``benchmarks/loss_balance.py``: on held-out crops at 64 tokens the MS-SSIM term's
    decoder gradient is about 45 times the MSE's).
    """
    mse = ((rec - target) ** 2).flatten(1).mean(1)
    if cfg.loss == "mse":
        return mse.mean()
    if cfg.loss == "log-mse":
        return torch.log(mse + 1e-5).mean()
    if cfg.loss == "mse+msssim":
        return mse.mean() + cfg.msssim_weight * msssim_dissimilarity(rec, target)
    raise ValueError(f"unknown loss {cfg.loss!r}; choose from {', '.join(LOSSES)}")


def check_loss(cfg: TrainConfig, tile_size: int) -> None:
    """Fail before training starts if ``cfg.loss`` cannot run."""
    if cfg.loss not in LOSSES:
        raise InputError(f"unknown loss {cfg.loss!r}; choose from {', '.join(LOSSES)}")
    if cfg.loss == "mse+msssim":
        try:
            import pytorch_msssim  # noqa: F401
        except ImportError:
            raise InputError("loss 'mse+msssim' needs pytorch-msssim: pip install 'vtcodec[eval]'") from None
        limit = (MSSSIM_WINDOW - 1) * 16
        if tile_size <= limit:
            raise InputError(f"loss 'mse+msssim' needs tiles larger than {limit} pixels, not {tile_size}")


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample PSNR in dB for tensors in [0, 1]."""
    mse = ((x - y) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return -10 * torch.log10(mse)


def learning_rate(cfg: TrainConfig, step: int, elapsed_s: float) -> float:
    """Linear warm-up, constant, then linear decay to 10% over the last part of the budget.

    The budget is ``max_steps`` when set (so that a resumed run repeats the same
    schedule exactly), else the wall time.
    """
    lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup_steps)
    progress = step / cfg.max_steps if cfg.max_steps else elapsed_s / (cfg.minutes * 60.0)
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


def warm_start(model: torch.nn.Module, weights: str) -> None:
    """Copy every tensor of a model file whose name matches; report the rest.

    A tensor that grew (same rank, no dimension smaller, e.g. more token groups)
    gets the source copied into its leading corner and keeps its fresh values
    elsewhere, so a model with more groups starts as its source for short prefixes.
    Residual blocks the target has in addition (deeper stages) keep their fresh,
    identity-at-start values; the source's layers move to their aligned places.
    """
    from vtcodec.decoders import full_network
    from vtcodec.zoo import load_model

    source_model = full_network(load_model(weights))
    renamed = aligned_names(source_model, model)
    source = {renamed.get(name, name): value for name, value in source_model.state_dict().items()}
    target = model.state_dict()
    copied, grown = {}, []
    for name, value in source.items():
        if name not in target:
            continue
        fresh = target[name]
        if fresh.shape == value.shape:
            copied[name] = value.float()
        elif _fits(value, fresh):
            merged = fresh.clone()
            merged[tuple(slice(0, n) for n in value.shape)] = value.float()
            copied[name] = merged
            grown.append(name)
    model.load_state_dict(copied, strict=False)
    fresh_names = sorted(set(target) - set(copied))
    print(
        f"warm start from {weights}: {len(copied)} tensors copied"
        f" (grown: {', '.join(grown) or 'none'}), fresh: {', '.join(fresh_names) or 'none'}",
        flush=True,
    )


def aligned_names(source: torch.nn.Module, target: torch.nn.Module) -> dict[str, str]:
    """Map the source's ``encoder.i.*`` / ``decoder.i.*`` names to the target's, where the
    target has extra residual blocks: each source layer goes to the next target layer of
    its type and shape, and only skipped residual blocks (identity at start) may lie between.
    """
    from vtcodec.models.tokenizer import ResBlock

    pairs: dict[str, dict[int, int]] = {}
    for part in ("encoder", "decoder"):
        src, dst = getattr(source, part, None), getattr(target, part, None)
        if not isinstance(src, torch.nn.Sequential) or not isinstance(dst, torch.nn.Sequential):
            continue
        j, part_pairs = 0, {}
        for i, layer in enumerate(src):
            while j < len(dst) and isinstance(dst[j], ResBlock) and not _same_layer(layer, dst[j]):
                j += 1
            if j == len(dst) or not _same_layer(layer, dst[j]):
                break
            part_pairs[i], j = j, j + 1
        else:
            pairs[part] = part_pairs
    mapping: dict[str, str] = {}
    for name in source.state_dict():
        head, _, rest = name.partition(".")
        index, _, tail = rest.partition(".")
        if head in pairs and index.isdigit() and int(index) in pairs[head]:
            mapping[name] = f"{head}.{pairs[head][int(index)]}.{tail}"
    return mapping


def _fits(value: torch.Tensor, fresh: torch.Tensor) -> bool:
    """``value`` can be copied into the leading corner of ``fresh``: same rank, no dimension larger."""
    return value.dim() == fresh.dim() and all(a <= b for a, b in zip(value.shape, fresh.shape, strict=True))


def _same_layer(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    """Same type, and every tensor of ``a`` fits into ``b``'s."""
    if type(a) is not type(b):
        return False
    pa, pb = a.state_dict(), b.state_dict()
    return pa.keys() == pb.keys() and all(_fits(pa[k], pb[k]) for k in pa)


def save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


@dataclass(frozen=True)
class Distributed:
    """This process's place in a ``torchrun`` job (rank 0 of 1 when run alone)."""

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Distributed:
    """Join the process group when launched by torchrun: NCCL on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Distributed(0, 1, torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        dist.init_process_group("nccl")
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo")
    return Distributed(rank, world, device)


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
        bar.write(json.dumps(record))
        with log_path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")

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


def checkpoint_network(ckpt_path: str | Path) -> torch.nn.Module:
    """The tokenizer network saved in a training checkpoint."""
    state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    model = build_model(TokenizerConfig.from_dict(state["model_config"]))
    model.load_state_dict(state["model"])
    return model


@torch.no_grad()
def export_model(
    model: torch.nn.Module,
    data_dirs: list[str],
    out_path: str | Path,
    prior_tiles: int = 16384,
    val_dir: str | None = None,
    seed: int = 1234,
) -> bytes:
    """Fit the per-position and digit-context priors on training crops and write a model file.

    With ``val_dir``, the priors' smoothing is chosen by the held-out code length there.
    Returns the model id.
    """
    from vtcodec.context_prior import DigitContextPrior
    from vtcodec.prior import TokenPrior
    from vtcodec.zoo import context_layout, save_model

    config = model.config
    # Round-trip through fp16 first: the priors must describe the tokens of the shipped weights.
    model.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
    model.eval()

    def tokens_of(folders: list[str], count: int) -> np.ndarray:
        images = [load_rgb(p, config.tile_size) for p in list_images(folders)]
        sampler = CropSampler(images, config.tile_size, min_scale=0.5, seed=seed)
        return torch.cat([model.encode(sampler.sample(64)) for _ in range(-(-count // 64))]).numpy()

    train_tokens = tokens_of(data_dirs, prior_tiles)
    held_out = tokens_of([val_dir], 1024) if val_dir else None
    if held_out is not None:
        prior, backoff = TokenPrior.fit_best(train_tokens, held_out, model.codebook_size)
        print(f"prior smoothing: backoff {backoff:g} pseudo-counts (best on {val_dir})", flush=True)
    else:
        prior = TokenPrior.fit(train_tokens, model.codebook_size)
    context = None
    layout = context_layout(model)
    if layout is not None:
        groups, group_of, neighbours = layout
        context = DigitContextPrior.fit(
            train_tokens, config.fsq_levels, groups, neighbours, held_out, group_of=group_of
        )
        if held_out is not None:
            positions = np.arange(held_out.shape[1])
            per_position = -np.log2(prior.probabilities(positions)[positions, held_out]).mean()
            print(
                f"held-out bits/token: per-position {per_position:.3f}, "
                f"digit-context {context.token_bits(held_out).mean():.3f}",
                flush=True,
            )
    return save_model(model, prior, out_path, context)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data", nargs="+")
    parser.add_argument("--out", required=True)
    parser.add_argument("--val")
    parser.add_argument("--config", help="JSON file with 'model' and 'train' sections")
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--steps", type=int, help="also stop after this many optimizer steps in all")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--init", help="start from these weights (a model file), e.g. the shipped default")
    parser.add_argument("--prior-tiles", type=int, default=16384, help="training tiles to fit the priors on")
    parser.add_argument("--export-only", action="store_true", help="skip training: export RUN/last.ckpt")
    parser.add_argument("--refit", metavar="MODEL", help="skip training: fit the priors again for MODEL's weights")
    args = parser.parse_args(argv)
    model_cfg, train_cfg = TokenizerConfig(), TrainConfig(minutes=args.minutes, max_steps=args.steps)
    if args.config:
        spec = json.loads(Path(args.config).read_text())
        model_cfg = TokenizerConfig.from_dict(spec.get("model", {}))
        train_cfg = replace(train_cfg, **{**spec.get("train", {}), "minutes": args.minutes, "max_steps": args.steps})
    if args.init and not args.config:
        from vtcodec.zoo import load_model

        model_cfg = load_model(args.init).config
    out = Path(args.out) / "model.safetensors"
    if args.refit:
        from vtcodec.decoders import full_network
        from vtcodec.zoo import load_model

        source = load_model(args.refit)
        network = build_model(source.config)  # a copy: the export rounds its weights to fp16
        network.load_state_dict(full_network(source).state_dict())
        out.parent.mkdir(parents=True, exist_ok=True)
    else:
        if args.export_only:
            ckpt = Path(args.out) / "last.ckpt"
        else:
            ckpt = train(
                args.data, args.out, args.val, model_cfg, train_cfg, resume=args.resume, init_weights=args.init
            )
            if int(os.environ.get("RANK", "0")) != 0:
                return  # rank 0 exports
        network = checkpoint_network(ckpt)
    model_id = export_model(network, args.data, out, prior_tiles=args.prior_tiles, val_dir=args.val)
    print(f"exported {out} (model id {model_id.hex()})", flush=True)


if __name__ == "__main__":
    main()
