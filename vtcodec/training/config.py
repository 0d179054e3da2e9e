"""Training settings: the tokenizer run's and the decoder run's, and reading them from a JSON config."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from vtcodec.errors import InputError
from vtcodec.models import TokenizerConfig
from vtcodec.perceptual import FEATURE_NETS
from vtcodec.zoo import load_model


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


@dataclass(frozen=True)
class DecoderTrainConfig:
    """Settings of a whole-grid decoder run; saved in every checkpoint."""

    rows: int = 2
    cols: int = 2
    # Decoder layers from this index on run over the whole grid (ConvTokenizer.render_mosaic). For the
    # shipped network, 5: the token stage (tokens up to 1/16 scale, 3 blocks, up to 1/8) stays per tile.
    grid_from: int = 5
    batch_size: int = 4
    lr: float = 5e-5
    warmup_steps: int = 100
    weight_decay: float = 1e-4
    decay_fraction: float = 0.3
    length_dist: str = "front"
    full_length_prob: float = 0.1
    shared_length_prob: float = 0.5  # all tiles of a crop at one length, as with --tokens
    empty_prob: float = 0.03  # tiles with no tokens at all, as rate control makes them
    min_scale: float = 0.5
    minutes: float = 60.0
    max_steps: int | None = None
    log_every: int = 25
    eval_every: int = 500
    val_images: int = 32  # held-out crops scored during training
    checkpoint_minutes: float = 4.0
    seed: int = 0
    # Grow the starting decoder function-preservingly (vtcodec.models.growth): decoder_blocks,
    # decoder_hidden, decoder_attention; or, with decoder_channels (other widths), start a new decoder for
    # the same tokens (warm_start.fresh_decoder). Layers it adds learn at lr * fresh_lr_scale.
    architecture: dict | None = None
    fresh_lr_scale: float = 1.0
    # Joint fine-tuning: the encoder learns too (at lr * encoder_lr_scale), so the tokens change and the
    # run exports a new token space (RUN/model.safetensors, priors refitted) with the decoder file for it.
    train_encoder: bool = False
    encoder_lr_scale: float = 1.0
    # With train_encoder: rate_weight x the bits per pixel of the kept tokens joins the loss, priced by a
    # learned per-position digit table (vtcodec.training.rate_term) that learns at rate_table_lr.
    rate_weight: float = 0.0
    rate_table_lr: float = 1e-2
    # Loss: "mse", or "perceptual": mse_weight * MSE + lpips_weight * ST-LPIPS (vtcodec.perceptual, weights
    # from --perceptual-weights) + spectral_weight * the L1 distance of
    # amplitude spectra + lattice_weight * the L1 distance of the lattice_period-periodic patterns of
    # lattice_window² windows of the whole crops (vtcodec.perceptual.lattice_distance) + gan_weight * a patch
    # discriminator's hinge loss, from gan_start_step on.
    # ST-LPIPS and the discriminator see one random perceptual_crop² window of each crop (0: all of it);
    # the shift-tolerant AlexNet costs more than the decoder at full size.
    loss: str = "mse"
    mse_weight: float = 1.0
    lpips_weight: float = 0.1
    lpips_net: str = "alex"  # ST-LPIPS's feature network: "alex" or "vgg" (VGG16, slower)
    spectral_weight: float = 0.0
    spectral_patch: int = 0  # the spectra's block side (0: each whole window)
    lattice_weight: float = 0.0
    lattice_period: int = 16
    lattice_window: int = 64
    gan_weight: float = 0.0
    gan_start_step: int = 200
    disc_lr: float = 1e-4
    perceptual_crop: int = 0


def tokenizer_settings(
    config: str | Path | None, minutes: float, steps: int | None, init: str | Path | None = None
) -> tuple[TokenizerConfig, TrainConfig]:
    """The network and the run's settings: a JSON file's ``model`` and ``train`` sections over the defaults.

    Without a config, a run that starts from ``init`` takes that model's network.
    """
    model_cfg, train_cfg = TokenizerConfig(), TrainConfig(minutes=minutes, max_steps=steps)
    if config is not None:
        try:
            spec = json.loads(Path(config).read_text())
            model_cfg = TokenizerConfig.from_dict(spec.get("model", {}))
            train_cfg = replace(train_cfg, **{**spec.get("train", {}), "minutes": minutes, "max_steps": steps})
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise InputError(f"{config}: not a valid training config ({exc})") from None
    elif init is not None:
        model_cfg = load_model(init).config
    return model_cfg, train_cfg


def decoder_settings(path: str | Path | None, minutes: float, steps: int | None) -> DecoderTrainConfig:
    """The run's settings: the ``decoder_train`` section of a JSON file over the defaults."""
    cfg = DecoderTrainConfig(minutes=minutes, max_steps=steps)
    if path is None:
        return cfg
    try:
        spec = json.loads(Path(path).read_text()).get("decoder_train", {})
        cfg = replace(cfg, **{**spec, "minutes": minutes, "max_steps": steps})

        if cfg.lpips_net not in FEATURE_NETS:
            raise ValueError(f"lpips_net must be one of {', '.join(FEATURE_NETS)}, not {cfg.lpips_net!r}")
        if cfg.lattice_period < 1 or cfg.lattice_window % cfg.lattice_period:
            raise ValueError("lattice_window must be a multiple of lattice_period")
        if cfg.rate_weight and not cfg.train_encoder:
            raise ValueError('a rate_weight needs "train_encoder": true (a frozen encoder cannot change its bits)')
        return cfg
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise InputError(f"{path}: not a valid decoder training config ({exc})") from None
