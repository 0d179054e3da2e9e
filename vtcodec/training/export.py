"""Checkpoints and what a run exports: a model file (with its fitted priors) or a decoder file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vtcodec.context_prior import DigitContextPrior
from vtcodec.decoders.files import save_decoder
from vtcodec.errors import InputError
from vtcodec.models import TokenizerConfig, build_model
from vtcodec.prior import TokenPrior
from vtcodec.training.data import CropSampler, list_images, load_rgb
from vtcodec.zoo import context_layout, save_model


def save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path) -> dict:
    """A training checkpoint's state, read without unpickling code (``weights_only=True``).

    Checkpoints hold only tensors, numbers, strings, lists and dicts, so any other object in the
    file (a pickled callable, say) is refused with one line instead of being run.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"{path}: no such checkpoint") from None
    except Exception as exc:  # UnpicklingError for a foreign object, RuntimeError or EOFError for a damaged file
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: not a vtcodec training checkpoint ({first_line})") from None
    if not isinstance(state, dict):
        raise InputError(f"{path}: not a vtcodec training checkpoint")
    return state


def state_network(state: dict) -> torch.nn.Module:
    """The tokenizer network of a loaded training checkpoint (:func:`load_checkpoint`)."""
    model = build_model(TokenizerConfig.from_dict(state["model_config"]))
    model.load_state_dict(state["model"])
    return model


def checkpoint_network(ckpt_path: str | Path) -> torch.nn.Module:
    """The tokenizer network saved in a training checkpoint."""
    return state_network(load_checkpoint(ckpt_path))


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


def export_decoder(
    state: dict, out_path: str | Path, name: str, weights: str = "int8", token_space: bytes | None = None
) -> str:
    """Write the decoder of a loaded checkpoint as a decoder file of its token space; returns its SHA-256.

    ``token_space`` (a model id) replaces the checkpoint's, for a run that trained the encoder too.

    ``weights`` int8 (the default) halves the file; its pixels stay within rounding of fp16's
    (2026-12-02, the grid decoder on 8 held-out photos: 57 dB apart, ±0.003 dB PSNR).
    """
    network = state_network(state)
    grid_from = state["train_config"].get("grid_from", 0)
    space = token_space if token_space is not None else bytes.fromhex(state["token_space"])
    return save_decoder(network, name, space, out_path, "grid", grid_from, weights)
