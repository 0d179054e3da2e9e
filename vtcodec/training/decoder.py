"""Train a whole-grid decoder for a fixed token space: the encoder, quantizer and prior stay frozen.

With ``train_encoder`` the encoder learns too (a joint run, optionally with a rate term and a grown
encoder): the tokens change, so the run makes a new token space, exported by ``run_decoder``.

Each sample is a crop of ``rows x cols`` tiles. The frozen encoder tokenizes every
tile, every tile keeps its own random prefix (or all tiles one, as ``--tokens``
files have), and the decoder renders the crop as one mosaic
(``ConvTokenizer.render_mosaic``), so it learns to use its neighbours' tokens
across tile borders. It starts from the token space's own decoder weights, or from
another decoder of it (``--init-decoder``), grown function-preservingly when the
config's ``architecture`` asks (``vtcodec.models.growth``). The loss is MSE, or with
``"loss": "perceptual"`` MSE plus ST-LPIPS and a patch discriminator
(``vtcodec.perceptual``). Every file of the token space decodes with the result.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from vtcodec.errors import InputError
from vtcodec.models import ConvTokenizer, TokenizerConfig, build_model
from vtcodec.registry import DECODER_PREFIXES
from vtcodec.seams import lattice_share, seam_ratio
from vtcodec.training.config import DecoderTrainConfig
from vtcodec.training.data import CropSampler, list_images, load_rgb
from vtcodec.training.export import load_checkpoint, save_checkpoint
from vtcodec.training.loop import RunLog, TimedCheckpoints, random_streams, restore_streams, should_stop
from vtcodec.training.losses import psnr
from vtcodec.training.perceptual_terms import PerceptualTerms
from vtcodec.training.rate_term import RateTerm
from vtcodec.training.schedule import learning_rate, tile_lengths
from vtcodec.training.warm_start import starting_network
from vtcodec.zoo import load_model


def decoder_parameters(model: ConvTokenizer) -> list[torch.nn.Parameter]:
    """The parameters that only the decoder uses; everything else belongs to the token space."""
    return [p for name, p in model.named_parameters() if name.startswith(DECODER_PREFIXES)]


def split_tiles(crops: torch.Tensor, tile: int) -> torch.Tensor:
    """(B, 3, R * T, C * T) -> (B, R * C, 3, T, T), tiles in raster order."""
    b, c, h, w = crops.shape
    rows, cols = h // tile, w // tile
    tiles = crops.view(b, c, rows, tile, cols, tile).permute(0, 2, 4, 1, 3, 5)
    return tiles.reshape(b, rows * cols, c, tile, tile)


def tokenize_crops(
    model: ConvTokenizer, crops: torch.Tensor, grad: bool = False, priced: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, 3, R * T, C * T) -> quantized codes (B, R * C, K, D) (with ``grad``, straight through the
    rounding) and, when ``priced``, the FSQ values before rounding (B * R * C, K, D) for a rate term."""
    tiles = split_tiles(crops, model.tile_size)
    b, n = tiles.shape[:2]
    with torch.set_grad_enabled(grad):
        latents = model._latent(tiles.flatten(0, 1))
        codes, _ = model.quantizer(latents)
        bounded = model.quantizer.bound(latents) if priced else None
    return codes.view(b, n, *codes.shape[1:]), bounded


def render_crops(
    model: ConvTokenizer, codes: torch.Tensor, lengths: torch.Tensor, rows: int, cols: int, grid_from: int
) -> torch.Tensor:
    keep = torch.arange(model.max_tokens, device=codes.device) < lengths.unsqueeze(-1)
    return model.render_mosaic(codes, keep, rows, cols, grid_from)


def held_out_crops(folder: str, tile: int, limit: int | None = None, rows: int = 2, cols: int = 3) -> torch.Tensor:
    """One center crop of ``rows x cols`` tiles per held-out image that is large enough (the first ``limit``)."""
    crops = []
    for path in list_images([folder]):
        if limit is not None and len(crops) == limit:
            break
        img = load_rgb(path, tile)
        h, w = img.shape[:2]
        if h < w:
            r, c = rows, cols
        else:
            r, c = cols, rows
        if h < r * tile or w < c * tile:
            continue
        y, x = (h - r * tile) // 2, (w - c * tile) // 2
        crop = img[y : y + r * tile, x : x + c * tile]
        crops.append(crop if h < w else crop.transpose(1, 0, 2))  # all landscape, so they stack
    if not crops:
        raise InputError(f"no held-out image in {folder} holds {rows} x {cols} tiles")
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div_(255.0)


def _uint8(images: torch.Tensor) -> np.ndarray:
    return images.mul(255).round().permute(0, 2, 3, 1).cpu().numpy().astype(np.uint8)


@torch.no_grad()
def evaluate(
    model: ConvTokenizer, crops: torch.Tensor, token_counts: tuple[int, ...], grid_from: int
) -> dict[str, float]:
    """Held-out PSNR, seam ratio and lattice ratio of the mosaic decode at uniform token counts."""
    model.eval()
    tile, cell = model.tile_size, model.config.cell_size
    rows, cols = crops.shape[2] // tile, crops.shape[3] // tile
    out: dict[str, float] = {}
    codes = torch.cat([tokenize_crops(model, chunk)[0] for chunk in crops.split(8)])
    for n in token_counts:
        lengths = torch.full(codes.shape[:2], n, device=codes.device)
        rec = torch.cat(
            [
                render_crops(model, c, n_kept, rows, cols, grid_from).clamp(0, 1)
                for c, n_kept in zip(codes.split(8), lengths.split(8), strict=True)
            ]
        )
        out[f"psnr@{n}"] = round(float(psnr(rec, crops).mean()), 3)
        originals, decoded = _uint8(crops), _uint8(rec)
        seams = [seam_ratio(o, d, tile) for o, d in zip(originals, decoded, strict=True)]
        out[f"seam@{n}"] = round(float(np.mean(seams)), 3)
        # Pooled over the crops: one crop has too few cells for a stable ratio of its own.
        shares = [(lattice_share(o, cell), lattice_share(d, cell)) for o, d in zip(originals, decoded, strict=True)]
        out[f"lattice@{n}"] = round(float(np.mean([d for _, d in shares]) / np.mean([o for o, _ in shares])), 3)
    model.train()
    return out


def _network(
    ckpt_path: Path, source_id: str, init_weights: str, init_decoder: str | None, cfg: DecoderTrainConfig, resume: bool
) -> tuple[ConvTokenizer, DecoderTrainConfig, set[str], dict | None]:
    """The network, the settings, the fresh parameters and the checkpoint (None for a fresh run)."""
    if cfg.loss not in ("mse", "perceptual"):
        raise InputError(f"unknown decoder loss {cfg.loss!r} (mse or perceptual)")
    if resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        if state.get("token_space") != source_id:
            raise InputError(f"{ckpt_path}: a decoder run for model {state.get('token_space')}, not {init_weights}")
        cfg = replace(DecoderTrainConfig(**state["train_config"]), minutes=cfg.minutes, max_steps=cfg.max_steps)
        model = build_model(TokenizerConfig.from_dict(state["model_config"]))
        model.load_state_dict(state["model"])
        return model, cfg, set(state.get("fresh_parameters", [])), state
    model, cfg, fresh = starting_network(init_weights, init_decoder, cfg)
    return model, cfg, fresh, None


def _optimizer(
    model: ConvTokenizer, fresh: set[str], cfg: DecoderTrainConfig
) -> tuple[torch.optim.Optimizer, list[float], list[torch.nn.Parameter]]:
    """AdamW over the decoder's parameters (fresh ones at ``fresh_lr_scale``), and over the encoder's at
    ``encoder_lr_scale`` when ``train_encoder``; returns it, its groups' lr scales and the parameters."""
    for p in model.parameters():
        p.requires_grad_(False)
    params = decoder_parameters(model)
    decoder_ids = {id(p) for p in params}
    encoder = [p for p in model.parameters() if id(p) not in decoder_ids] if cfg.train_encoder else []
    for p in params + encoder:
        p.requires_grad_(True)
    names = {id(p): n for n, p in model.named_parameters()}
    groups = [
        {"params": [p for p in params if names[id(p)] not in fresh], "lr_scale": 1.0},
        {"params": [p for p in params if names[id(p)] in fresh], "lr_scale": cfg.fresh_lr_scale},
        {"params": [p for p in encoder if names[id(p)] not in fresh], "lr_scale": cfg.encoder_lr_scale},
        {
            "params": [p for p in encoder if names[id(p)] in fresh],
            "lr_scale": cfg.encoder_lr_scale * cfg.fresh_lr_scale,
        },
    ]
    params = params + encoder
    groups = [g for g in groups if g["params"]]
    lr_scales = [g.pop("lr_scale") for g in groups]
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay), lr_scales, params


def _crop_sampler(data_dirs: list[str], cfg: DecoderTrainConfig, tile: int) -> CropSampler:
    files = list_images(data_dirs)
    if not files:
        raise InputError(f"no training images found in {', '.join(map(str, data_dirs))}")
    print(
        f"loading {len(files)} training images; training on {'CUDA' if torch.cuda.is_available() else 'the CPU'}",
        flush=True,
    )
    crop_side = max(cfg.rows, cfg.cols) * tile
    return CropSampler([load_rgb(p, crop_side) for p in files], crop_side, cfg.min_scale, seed=cfg.seed)


def _optimize(
    rec: torch.Tensor,
    crops: torch.Tensor,
    opt: torch.optim.Optimizer,
    params: list[torch.nn.Parameter],
    terms: PerceptualTerms | None,
    step: int,
    gen: torch.Generator,
    extra: torch.Tensor | None = None,
) -> float:
    """The loss of the decoded crops (plus ``extra``), one step of the decoder (and one of the discriminator)."""
    loss = ((rec - crops) ** 2).mean()
    if terms is not None:
        loss = terms.loss(loss, rec, crops, step, gen)
    if extra is not None:
        loss = loss + extra
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    if terms is not None:
        terms.discriminator_step()
    return loss.item()


def train_decoder(
    data_dirs: list[str],
    out_dir: str,
    init_weights: str,
    val_dir: str | None,
    cfg: DecoderTrainConfig,
    resume: bool = False,
    init_decoder: str | None = None,
    perceptual_weights: str | None = None,
) -> Path:
    """Train (or resume) the whole-grid decoder of ``init_weights``'s token space; returns the checkpoint.

    A fresh run starts from the decoder ``init_decoder`` (default: the model file's own), grown to
    ``cfg.architecture`` when set.
    """

    torch.manual_seed(cfg.seed)
    run = Path(out_dir)
    run.mkdir(parents=True, exist_ok=True)
    ckpt_path, log_path = run / "last.ckpt", run / "log.jsonl"
    source = load_model(init_weights)
    model, cfg, fresh, state = _network(ckpt_path, source.model_id.hex(), init_weights, init_decoder, cfg, resume)
    step, elapsed = (state["step"], state["elapsed"]) if state is not None else (0, 0.0)
    opt, lr_scales, params = _optimizer(model, fresh, cfg)
    tile = model.tile_size
    if cfg.loss == "perceptual" and cfg.lattice_weight > 0 and cfg.lattice_window > min(cfg.rows, cfg.cols) * tile:
        raise InputError(f"lattice_window {cfg.lattice_window} is larger than the {cfg.rows} x {cfg.cols}-tile crops")
    sampler = _crop_sampler(data_dirs, cfg, tile)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    terms = PerceptualTerms(cfg, perceptual_weights, state, device) if cfg.loss == "perceptual" else None
    rate = None
    if cfg.rate_weight:
        levels = list(model.config.fsq_levels)
        rate = RateTerm(cfg.rate_weight, cfg.rate_table_lr, model.max_tokens, levels, state).to(device)
    val = held_out_crops(val_dir, tile, cfg.val_images).to(device) if val_dir else None
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        restore_streams(state, sampler, gen)
        print(f"resumed at step {step}, {elapsed / 60:.1f} min trained", flush=True)

    def checkpoint() -> None:
        run_state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "elapsed": elapsed}
        settings = {
            "model_config": model.config.to_dict(),
            "fresh_parameters": sorted(fresh),
            "token_space": source.model_id.hex(),
            "init": str(init_weights),
            "train_config": asdict(cfg),
        }
        extras = {**(terms.state() if terms is not None else {}), **(rate.state() if rate is not None else {})}
        save_checkpoint(ckpt_path, {**run_state, **extras, **settings, **random_streams(sampler, gen)})

    eval_counts = (16, 64, 256)
    budget = cfg.minutes * 60.0
    progress = RunLog(log_path, budget, elapsed, cfg.log_every)
    if val is not None and state is None:
        progress.write({"step": 0, "min": 0.0, **evaluate(model, val, eval_counts, cfg.grid_from)})
    checkpoints = TimedCheckpoints(cfg.checkpoint_minutes, checkpoint)
    model.train()
    while not should_stop(run, elapsed, budget, step, cfg.max_steps):
        t0 = time.time()
        # Crops are square; a crop of rows x cols tiles is its top-left part.
        crops = sampler.sample(cfg.batch_size)[:, :, : cfg.rows * tile, : cfg.cols * tile].to(device)
        codes, bounded = tokenize_crops(model, crops, grad=cfg.train_encoder, priced=rate is not None)
        lengths = tile_lengths(cfg.batch_size, cfg.rows * cfg.cols, model.max_tokens, cfg, gen).to(device)
        for group, scale in zip(opt.param_groups, lr_scales, strict=True):
            group["lr"] = learning_rate(cfg, step, elapsed) * scale
        rec = render_crops(model, codes, lengths, cfg.rows, cfg.cols, cfg.grid_from)
        extra = None
        if rate is not None:
            keep = torch.arange(model.max_tokens, device=device) < lengths.flatten().unsqueeze(-1)
            extra = rate.loss(bounded, keep, crops.shape[0] * crops.shape[2] * crops.shape[3])
        loss = _optimize(rec, crops, opt, params, terms, step, gen, extra)
        values = {"loss": loss, "psnr": float(psnr(rec.detach().clamp(0, 1), crops).mean())}
        if rate is not None:
            rate.step()
            values["bpp"] = rate.bpp
        step += 1
        elapsed += time.time() - t0
        record = progress.step(step, elapsed, **values)
        if record is not None:
            if val is not None and step % cfg.eval_every == 0:
                record.update(evaluate(model, val, eval_counts, cfg.grid_from))
            progress.write(record)
        checkpoints.tick()
    checkpoint()
    progress.finish(step, elapsed, evaluate(model, val, eval_counts, cfg.grid_from) if val is not None else {})
    return ckpt_path
