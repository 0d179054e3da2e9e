"""``vtcodec model import``: a user's TiTok or One-D-Piece checkpoint becomes a vtcodec model.

The checkpoint is read safely (``vtcodec.models.checkpoints``), its tokens are counted on the
user's images to fit the per-position prior (integer tables, as for every model), and the
result is one model file, ``NAME.safetensors`` in a model folder (``--model-dir``,
``$VTCODEC_MODEL_DIR``, else ``~/.cache/vtcodec/models``): the float32 weights, the prior, the
config, the name and the model id. ``--model NAME`` finds it by name and a ``.vtk`` file by id.

A tenth of the images (at least one; of one image, a tenth of its tiles) is held out: the prior's
smoothing is chosen on it, and its bits per token are reported beside the raw ``log2(V)`` and beside
a cheap 1D context, the previous token's id bucketed (measured only; the format codes under
per-position tables).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vtcodec import registry
from vtcodec.errors import UsageError
from vtcodec.fileio import write_atomic
from vtcodec.imageio import IMAGE_SUFFIXES, open_image
from vtcodec.jobs import collect_jobs
from vtcodec.models.checkpoints import load_checkpoint
from vtcodec.models.titok import FAMILIES
from vtcodec.pipeline import tokenize_pixels
from vtcodec.prior import TokenPrior, quantize_counts
from vtcodec.zoo import LoadedModel, model_id_of, serialize_model

CONTEXT_BUCKETS = 16  # the measured 1D context: the previous token's id, in this many buckets


@dataclass(frozen=True)
class ImportResult:
    name: str
    path: Path
    model_id: bytes
    images: int
    tiles: int  # fitted on
    held_out_tiles: int
    raw_bits: float  # log2 of the codebook size
    prior_bits: float  # per token, on the held-out tiles, under the fitted per-position prior
    context_bits: float  # the same under the previous token's bucket (measured, not used)


def images_in(inputs: list[Path], limit: int | None = None) -> list[Path]:
    """The image files that ``inputs`` name (files, folders searched recursively, globs), sorted; at most
    ``limit``."""
    found = [job.source for job in collect_jobs(list(inputs), None, IMAGE_SUFFIXES, lambda path: path)]
    return found[:limit] if limit else found


def split_held_out(tokens: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(fit, held-out) tiles: the last tenth of the images (at least one), or with one image the
    last tenth of its tiles; a one-tile image is both."""
    if len(tokens) > 1:
        held = max(1, len(tokens) // 10)
        return np.concatenate(tokens[:-held]), np.concatenate(tokens[-held:])
    tiles = tokens[0]
    held = max(1, len(tiles) // 10)
    return (tiles[:-held], tiles[-held:]) if len(tiles) > 1 else (tiles, tiles)


def context_bits(train: np.ndarray, held: np.ndarray, codebook: int, buckets: int = CONTEXT_BUCKETS) -> float:
    """Bits per token of ``held`` when each token is coded under (position, the previous token's bucket),
    fitted on ``train`` with the same back-off to its position's table as :meth:`TokenPrior.fit`."""
    per_position = TokenPrior.fit(train, codebook).freqs.astype(np.float64)
    per_position /= per_position.sum(axis=1, keepdims=True)
    k = train.shape[1]
    total = 0.0
    for j in range(k):
        if j == 0:
            total -= np.log2(per_position[0, held[:, 0]]).sum()
            continue
        bucket_train = train[:, j - 1] * buckets // codebook
        bucket_held = held[:, j - 1] * buckets // codebook
        counts = np.zeros((buckets, codebook))
        np.add.at(counts, (bucket_train, train[:, j]), 1.0)
        smoothed = counts + 64.0 * per_position[j]
        probs = smoothed / smoothed.sum(axis=1, keepdims=True)
        total -= np.log2(probs[bucket_held, held[:, j]]).sum()
    return float(total / held.size)


def import_model(
    source: str | Path,
    family: str,
    name: str,
    fit_on: list[Path],
    model_dir: str | Path | None = None,
    preset: str | None = None,
    config_file: str | Path | None = None,
    pixel_decoder: str | Path | None = None,
    limit: int | None = None,
    force: bool = False,
    device: str = "cpu",
) -> ImportResult:
    """Import a checkpoint as the model ``name`` (see the module's docstring)."""
    if family not in FAMILIES:
        raise UsageError(f"unknown family {family!r} (known: {', '.join(FAMILIES)})")
    if not registry.MODEL_NAME.fullmatch(name):
        raise UsageError(f"model names are letters, digits, '.', '_' and '-' (got {name!r})")
    folder = Path(model_dir) if model_dir is not None else registry.model_dirs()[0]
    target = folder / f"{name}.safetensors"
    if target.exists() and not force:
        raise UsageError(f"{target} exists; use --force to replace it")
    images = images_in([Path(p) for p in fit_on], limit)
    network = load_checkpoint(source, family, preset, config_file, pixel_decoder)
    if device != "cpu":
        network = network.to(device)
    k, codebook = network.max_tokens, network.codebook_size
    train, held = split_held_out(_tokens_of(network, images))
    prior, _ = TokenPrior.fit_best(train, held, codebook)
    positions = np.broadcast_to(np.arange(k), held.shape)
    prior_bits = prior.bits(held, positions) / held.size
    network = network.cpu()
    provisional = serialize_model(network, prior)
    model_id = model_id_of(provisional)
    metadata = {registry.NAME_KEY: name, registry.MODEL_ID_KEY: model_id.hex()}
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(target, serialize_model(network, prior, metadata=metadata), force=force)
    return ImportResult(
        name,
        target,
        model_id,
        len(images),
        len(train),
        len(held),
        math.log2(codebook),
        prior_bits,
        context_bits(train, held, codebook),
    )


def _tokens_of(network: torch.nn.Module, images: list[Path]) -> list[np.ndarray]:
    """Every tile's K token ids, per image."""
    uniform = TokenPrior(quantize_counts(np.ones((network.max_tokens, network.codebook_size))))  # never codes
    counting = LoadedModel(network, uniform, bytes(8), network.config, None)
    return [tokenize_pixels(np.asarray(open_image(path)), counting).ids for path in images]
