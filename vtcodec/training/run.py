"""The two training commands as functions: ``vtcodec train`` and ``vtcodec train-decoder`` call them."""

from __future__ import annotations

import os
from pathlib import Path

from vtcodec.decoders import full_network
from vtcodec.decoders.files import WEIGHT_FORMATS
from vtcodec.errors import InputError
from vtcodec.models import build_model
from vtcodec.training.config import decoder_settings, tokenizer_settings
from vtcodec.training.decoder import train_decoder
from vtcodec.training.export import (
    checkpoint_network,
    export_decoder,
    export_model,
    load_checkpoint,
    state_network,
)
from vtcodec.training.tokenizer import train
from vtcodec.zoo import load_model


def run_tokenizer(
    data: list[str],
    out: str,
    val: str | None = None,
    config: str | None = None,
    minutes: float = 60.0,
    steps: int | None = None,
    resume: bool = False,
    init: str | None = None,
    refit: str | None = None,
    export_only: bool = False,
    prior_tiles: int = 16384,
) -> Path | None:
    """Train (or resume, or only export, or ``refit`` the priors of a model file); write RUN/model.safetensors.

    Returns the model file, or None on a torchrun rank other than 0 (rank 0 exports).
    """
    model_cfg, train_cfg = tokenizer_settings(config, minutes, steps, init)
    path = Path(out) / "model.safetensors"
    if refit:
        source = load_model(refit)
        network = build_model(source.config)  # a copy: the export rounds its weights to fp16
        network.load_state_dict(full_network(source).state_dict())
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        ckpt = Path(out) / "last.ckpt"
        if not export_only:
            ckpt = train(data, out, val, model_cfg, train_cfg, resume=resume, init_weights=init)
            if int(os.environ.get("RANK", "0")) != 0:
                return None
        elif not ckpt.exists():
            raise InputError(f"{ckpt}: no checkpoint to export")
        network = checkpoint_network(ckpt)
    export_model(network, data, path, prior_tiles=prior_tiles, val_dir=val)
    return path


def run_decoder(
    data: list[str],
    out: str,
    init: str,
    val: str | None = None,
    config: str | None = None,
    minutes: float = 60.0,
    steps: int | None = None,
    resume: bool = False,
    init_decoder: str | None = None,
    perceptual_weights: str | None = None,
    name: str = "grid",
    export_only: bool = False,
    weights: str = "int8",
) -> tuple[Path, str]:
    """Train (or resume, or only export) a decoder of ``init``'s token space; write RUN/decoder.safetensors.

    A joint run (``train_encoder`` in the config) makes a new token space: it also writes
    RUN/model.safetensors, with priors fitted on ``data``, and the decoder file serves that model.
    Returns the decoder file and its SHA-256.
    """

    load_model(init)  # a bad model file fails here, in one line
    if weights not in WEIGHT_FORMATS:
        raise InputError(f"unknown weight format {weights!r} (int8 or fp16)")
    cfg = decoder_settings(config, minutes, steps)
    ckpt = Path(out) / "last.ckpt"
    if not export_only:
        ckpt = train_decoder(data, out, init, val, cfg, resume, init_decoder, perceptual_weights)
    elif not ckpt.exists():
        raise InputError(f"{ckpt}: no checkpoint to export")
    path = Path(out) / "decoder.safetensors"
    state = load_checkpoint(ckpt)  # once: a joint run's checkpoint holds two networks' worth of state
    token_space = None
    if state["train_config"].get("train_encoder"):
        token_space = export_model(state_network(state), data, Path(out) / "model.safetensors", val_dir=val)
    return path, export_decoder(state, path, name, weights, token_space)
