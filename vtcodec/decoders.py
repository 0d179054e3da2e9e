"""Decoders: the networks that turn a token space's tokens into pixels, chosen by name.

A model file (``vtcodec.zoo``) defines a **token space**: the encoder, the quantizer
and the prior. Its model id is written into every ``.vtk`` file. Decoders are
separate: any decoder registered for a token space decodes every file of it, so a
better decoder upgrades old files without re-encoding them.

- ``tiled``: the model file's own decoder, every tile alone (zero padding at its
  edges). Every token space has it.
- A **decoder file** (``*.decoder.safetensors``): fp16 weights of the decoder's
  layers, with JSON metadata under ``vtcodec.decoder`` naming its token space and
  its context. Context ``grid`` means the decoder runs over the token maps of all
  tiles at once (``ConvTokenizer.render_mosaic``), so it sees across tile borders
  and leaves no seams. Large images are decoded in overlapping windows of tiles
  whose margin covers the decoder's receptive field, so the result equals a
  whole-image decode while memory stays bounded.

The registry (``vtcodec.registry``) lists every decoder of every token space and
which one is its default; ``--decoder`` also takes the path of a decoder file. A
decoder file stores fp16 tensors, or int8 ones with an fp16 scale per output
channel (``serialize_decoder``; the decoded pixels stay within rounding of fp16's).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load as load_numpy
from safetensors.torch import save as save_torch
from torch import nn

from vtcodec import registry, zoo
from vtcodec.errors import InputError, UnknownModelError
from vtcodec.models import ConvTokenizer, TokenizerConfig, build_model
from vtcodec.models.tokenizer import DECODER_ARCHITECTURE, AttentionBlock, ResBlock, Upsample
from vtcodec.tiling import TILE_BATCH, TileGrid, place_tiles
from vtcodec.zoo import DECODER_PREFIXES, LoadedModel

TILED = "tiled"
CONTEXTS = ("tile", "grid")
DECODER_KEY = "vtcodec.decoder"
WEIGHT_FORMATS = ("fp16", "int8")  # how a decoder file stores its tensors (serialize_decoder)
SCALE_PREFIX = "scale:"  # int8 decoder files: the per-channel scale of tensor NAME is "scale:NAME"
WINDOW_TILES = 12  # grid decoders: images of more tiles than this along a side are decoded in windows

_cache: dict[tuple[bytes, str, str], Decoder] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Decoder:
    """A decoder for one token space: a network and how much of the image it sees."""

    name: str
    token_space: bytes
    network: ConvTokenizer
    context: str  # "tile": each tile alone; "grid": the whole token grid
    path: Path | None = None
    grid_from: int = 0  # grid context: the first decoder layer that runs over the whole grid

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def _autocast(self) -> contextlib.AbstractContextManager:
        return zoo.autocast(self.device)

    @property
    def margin_tiles(self) -> int:
        """Tiles of context on each side of a window that make it equal a whole-image decode."""
        return math.ceil(receptive_radius(self.network, self.grid_from) / self.network.tile_size)

    @torch.no_grad()
    def render_padded(
        self, ids: np.ndarray, counts: np.ndarray, grid: TileGrid, window: int = WINDOW_TILES
    ) -> np.ndarray:
        """Tokens (tiles, n) with per-tile ``counts`` -> uint8 (rows * T, cols * T, 3), padding included."""
        t = grid.tile
        canvas = np.empty((grid.rows * t, grid.cols * t, 3), dtype=np.uint8)
        net = self.network
        if self.context == "tile":
            padded = TileGrid(grid.cols * t, grid.rows * t, t)  # the same tiles, nothing cropped
            for start in range(0, grid.count, TILE_BATCH):
                stop = min(start + TILE_BATCH, grid.count)
                with self._autocast():
                    tiles = net.decode(self._ids(ids[start:stop]), self._lengths(counts[start:stop]))
                place_tiles(canvas, padded, start, tiles)
            return canvas
        ids_grid = ids.reshape(grid.rows, grid.cols, -1)
        counts_grid = np.asarray(counts).reshape(grid.rows, grid.cols)
        margin = self.margin_tiles
        for (r0, r1, rc0, rc1), (c0, c1, cc0, cc1) in _windows(grid.rows, grid.cols, window, margin):
            block_ids = ids_grid[rc0:rc1, cc0:cc1].reshape((rc1 - rc0) * (cc1 - cc0), -1)
            block_counts = counts_grid[rc0:rc1, cc0:cc1].reshape(-1)
            with self._autocast():
                image = self._mosaic(block_ids, block_counts, rc1 - rc0, cc1 - cc0)
            core = _to_uint8(image)[0, (r0 - rc0) * t : (r1 - rc0) * t, (c0 - cc0) * t : (c1 - cc0) * t]
            canvas[r0 * t : r1 * t, c0 * t : c1 * t] = core
        return canvas

    def render(self, ids: np.ndarray, counts: np.ndarray, grid: TileGrid, window: int = WINDOW_TILES) -> np.ndarray:
        """Tokens -> uint8 (height, width, 3) of the original size."""
        return self.render_padded(ids, counts, grid, window)[: grid.height, : grid.width]

    def _ids(self, ids: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(ids)).to(self.device)

    def _lengths(self, counts: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(counts, dtype=np.int64)).to(self.device)

    def _mosaic(self, ids: np.ndarray, counts: np.ndarray, rows: int, cols: int) -> torch.Tensor:
        net = self.network
        k = net.max_tokens
        full = torch.zeros(len(ids), k, dtype=torch.int64, device=self.device)
        full[:, : ids.shape[1]] = self._ids(ids[:, :k])
        keep = torch.arange(k, device=self.device) < self._lengths(counts).unsqueeze(1)
        codes = net.quantizer.ids_to_codes(full).to(net.absent.dtype)
        return net.render_mosaic(codes.unsqueeze(0), keep.unsqueeze(0), rows, cols, self.grid_from).clamp(0, 1)


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [0, 1] -> (B, H, W, 3) uint8."""
    return images.float().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def _spans(n: int, window: int, margin: int) -> list[tuple[int, int, int, int]]:
    """(core start, core stop, context start, context stop) along one axis of ``n`` tiles."""
    if n <= window:
        return [(0, n, 0, n)]
    core = max(window - 2 * margin, 1)
    return [(s, min(s + core, n), max(s - margin, 0), min(s + core + margin, n)) for s in range(0, n, core)]


def _windows(rows: int, cols: int, window: int, margin: int) -> Iterator[tuple[tuple[int, ...], tuple[int, ...]]]:
    for row_span in _spans(rows, window, margin):
        for col_span in _spans(cols, window, margin):
            yield row_span, col_span


def receptive_radius(network: ConvTokenizer, grid_from: int = 0) -> int:
    """How far (pixels) past the edge of its tile a tile's tokens can change the output.

    Only the decoder layers from ``grid_from`` on see other tiles. Each of their
    convolutions reaches ``kernel // 2`` features further, one feature being
    ``scale`` pixels at its stage; the decoder starts at the token cells' scale.
    With ``grid_from = 0`` the fine tokens' input convolution reaches as far as
    the first layer does, or less.
    """
    scale, radius = float(network.config.cell_size), 0.0
    for index, layer in enumerate(network.decoder):
        seen = index >= grid_from
        if isinstance(layer, Upsample):
            radius += (layer.conv.kernel_size[0] // 2) * scale * seen
            scale /= 2
        elif isinstance(layer, ResBlock):
            radius += (layer.conv1.kernel_size[0] // 2 + layer.conv2.kernel_size[0] // 2) * scale * seen
        elif isinstance(layer, AttentionBlock):
            if seen:
                raise ValueError("attention sees its whole input: it must run before grid_from, on each tile")
        elif isinstance(layer, nn.Conv2d):
            radius += (layer.kernel_size[0] // 2) * scale * seen
        elif isinstance(layer, nn.PixelShuffle):
            scale /= layer.upscale_factor
        elif not isinstance(layer, nn.SiLU):
            raise ValueError(f"unknown decoder layer {type(layer).__name__}")
    return math.ceil(radius)


def tiled(model: LoadedModel) -> Decoder:
    """The token space's own decoder, each tile alone: the model file's, or its registered ``tiled`` decoder."""
    if model.has_decoder:
        return Decoder(TILED, model.model_id, model.model, "tile", model.path)
    return load_decoder(model, TILED)


def quantize_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per output channel: (int8 values, fp16 scale per channel); ``values * scale`` ~ weight."""
    rows = weight.detach().float().reshape(len(weight), -1)
    scale = (rows.abs().amax(dim=1) / 127).to(torch.float16).float()
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    values = (rows / scale.unsqueeze(1)).round().clamp(-127, 127).to(torch.int8)
    return values.reshape(weight.shape).contiguous(), scale.to(torch.float16)


PERCEPTUAL = "perceptual"  # the decoder that --realism 1 gives; 0 is the token space's default decoder
_blends: dict[tuple[bytes, str, str, float], Decoder] = {}


def blend(fidelity: Decoder, realism: Decoder, weight: float) -> Decoder:
    """A decoder whose weights are ``(1 - weight) * fidelity + weight * realism``: one decode's cost.

    Both must be decoders of one token space with one shape (the perceptual decoder is
    fine-tuned from the fidelity one, so the path between them stays in one basin).
    """
    if not 0.0 <= weight <= 1.0:
        raise InputError(f"realism must be in 0 ... 1 (got {weight})")
    if weight in (0.0, 1.0):
        return realism if weight else fidelity
    same = (fidelity.token_space, fidelity.context, fidelity.grid_from) == (
        realism.token_space,
        realism.context,
        realism.grid_from,
    )
    a, b = fidelity.network.state_dict(), realism.network.state_dict()
    if not same or a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        raise InputError(f"decoders {fidelity.name!r} and {realism.name!r} cannot be blended (different shapes)")
    key = (fidelity.token_space, fidelity.name, realism.name, round(weight, 4))
    with _lock:
        if key not in _blends:
            network = build_model(fidelity.network.config)
            mixed = {k: torch.lerp(a[k].float(), b[k].float(), weight) if a[k].is_floating_point() else a[k] for k in a}
            network.load_state_dict(mixed)
            network = network.eval().to(fidelity.device, memory_format=torch.channels_last)
            name = f"{fidelity.name}+{realism.name}@{weight:g}"
            _blends[key] = Decoder(name, fidelity.token_space, network, fidelity.context, None, fidelity.grid_from)
        return _blends[key]


def choose(model: LoadedModel, name: str | Path | None = None, realism: float | None = None) -> Decoder:
    """The decoder ``name`` (None: the default), or with ``realism`` the default blended toward ``perceptual``."""
    if realism is None:
        return load_decoder(model, name)
    if name is not None:
        raise InputError("give a decoder or a realism, not both")
    if PERCEPTUAL not in decoder_names(model):
        raise InputError(f"model {model.model_id.hex()} has no {PERCEPTUAL!r} decoder, so no realism setting")
    return blend(load_decoder(model), load_decoder(model, PERCEPTUAL), float(realism))


def full_network(model: LoadedModel) -> ConvTokenizer:
    """The token space's network with a decoder (to train from): the model file's own, else its default decoder's."""
    return model.model if model.has_decoder else load_decoder(model).network


def serialize_decoder(
    network: ConvTokenizer,
    name: str,
    token_space: bytes,
    context: str = "grid",
    grid_from: int = 0,
    weights: str = "fp16",
) -> bytes:
    """The bytes of a decoder file: the decoder's tensors and their metadata.

    ``weights`` is ``fp16``, or ``int8``: every tensor of two or more dimensions as
    int8 with an fp16 scale per output channel (``SCALE_PREFIX`` + its name), half the bytes.
    """
    if context not in CONTEXTS:
        raise ValueError(f"unknown decoder context {context!r}")
    if weights not in WEIGHT_FORMATS:
        raise ValueError(f"unknown weight format {weights!r} (fp16 or int8)")
    if not 0 <= grid_from <= len(network.decoder):
        raise ValueError(f"grid_from must be 0 ... {len(network.decoder)}")
    tensors = {}
    for key, value in network.state_dict().items():
        if not key.startswith(DECODER_PREFIXES):
            continue
        if weights == "int8" and value.dim() >= 2:
            tensors[key], tensors[SCALE_PREFIX + key] = quantize_int8(value)
        else:
            tensors[key] = value.detach().to("cpu", torch.float16).contiguous()
    receptive_radius(network, grid_from if context == "grid" else len(network.decoder))
    meta = {
        "name": name,
        "token_space": token_space.hex(),
        "context": context,
        "grid_from": grid_from,
        "architecture": architecture(network),
        "weights": weights,
    }
    return save_torch(tensors, metadata={DECODER_KEY: json.dumps(meta, sort_keys=True)})


def _dequantize(tensors: dict[str, np.ndarray], weights: str) -> dict[str, torch.Tensor]:
    """A decoder file's tensors as float32, int8 ones times their per-channel scale."""
    scales = {k[len(SCALE_PREFIX) :]: v for k, v in tensors.items() if k.startswith(SCALE_PREFIX)}
    if weights == "fp16" and scales:
        raise ValueError("scales in an fp16 decoder file")
    out = {}
    for key, value in tensors.items():
        if key.startswith(SCALE_PREFIX):
            if key[len(SCALE_PREFIX) :] not in tensors:
                raise ValueError(f"a scale without its tensor: {key}")
            continue
        if value.dtype == np.int8:
            scale = scales.get(key)
            if scale is None or scale.shape != (len(value),):
                raise ValueError(f"int8 tensor {key} without a scale per output channel")
            value = value.astype(np.float32) * scale.astype(np.float32).reshape(-1, *([1] * (value.ndim - 1)))
        out[key] = torch.from_numpy(value.astype(np.float32))
    return out


def architecture(network: ConvTokenizer) -> dict:
    """The decoder-only hyper-parameters of ``network`` (lists for tuples), as a decoder file records them."""
    config = network.config
    return {
        "decoder_blocks": list(config.decoder_stage_blocks()),
        "decoder_hidden": list(config.decoder_stage_hidden()),
        "decoder_attention": config.decoder_attention,
    }


def _decoder_config(model: LoadedModel, arch: object) -> TokenizerConfig:
    """The token space's config with a decoder file's architecture keys (none: the token space's own decoder)."""
    if not isinstance(arch, dict) or set(arch) - set(DECODER_ARCHITECTURE):
        raise ValueError(f"architecture {arch!r}")
    config = TokenizerConfig.from_dict({**model.config.to_dict(), **arch})  # JSON lists become tuples there
    blocks, hidden = config.decoder_stage_blocks(), config.decoder_stage_hidden()  # validates them
    if max(blocks) > 64 or max(hidden) > 4096 or not 0 <= config.decoder_attention <= 64:
        raise ValueError(f"architecture {arch!r} out of range")
    return config


def parse_decoder(data: bytes, model: LoadedModel, path: Path | None = None) -> Decoder:
    """A decoder from the bytes of a decoder file, for ``model``'s token space."""
    where = str(path) if path else "decoder"
    try:
        header_len = int.from_bytes(data[:8], "little")
        meta = json.loads(json.loads(data[8 : 8 + header_len])["__metadata__"][DECODER_KEY])
        tensors = load_numpy(data)
        token_space = bytes.fromhex(meta["token_space"])
        name, context, grid_from = str(meta["name"]), meta["context"], int(meta.get("grid_from", 0))
        if context not in CONTEXTS:
            raise ValueError(f"unknown context {context!r}")
        if meta.get("weights", "fp16") not in WEIGHT_FORMATS:
            raise ValueError(f"unknown weight format {meta['weights']!r}")
        config = _decoder_config(model, meta.get("architecture", {}))
        tensors = _dequantize(tensors, meta.get("weights", "fp16"))
    except (SafetensorError, KeyError, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: not a valid vtcodec decoder file ({exc})") from None
    if token_space != model.model_id:
        raise UnknownModelError(
            f"{where}: decoder {name!r} is for model {token_space.hex()}, not {model.model_id.hex()}"
        )
    try:
        network = build_model(config)
    except ValueError as exc:
        raise InputError(f"{where}: not a valid vtcodec decoder file ({exc})") from None
    state = {k: v for k, v in model.model.state_dict().items() if not k.startswith(DECODER_PREFIXES)}
    state.update({k: v for k, v in network.state_dict().items() if k.startswith(DECODER_PREFIXES)})
    unknown = [k for k in tensors if k not in state or not k.startswith(DECODER_PREFIXES)]
    missing = [k for k in state if k.startswith(DECODER_PREFIXES) and k not in tensors]
    if unknown or missing:
        wrong = f"unknown tensors {unknown[:3]}" if unknown else f"missing tensors {missing[:3]}"
        raise InputError(f"{where}: not a valid vtcodec decoder file ({wrong})")
    state.update(tensors)
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(f"{where}: decoder does not fit model {model.model_id.hex()} ({exc})") from None
    if not 0 <= grid_from <= len(network.decoder):
        raise InputError(f"{where}: not a valid vtcodec decoder file (grid_from {grid_from})")
    try:
        receptive_radius(network, grid_from if context == "grid" else len(network.decoder))
    except ValueError as exc:
        raise InputError(f"{where}: not a valid vtcodec decoder file ({exc})") from None
    # channels_last: 1.3x faster convolutions on this CPU (benchmarks/decoder_eval.py), the same pixels within rounding
    network = network.eval().to(model.device, memory_format=torch.channels_last)
    return Decoder(name, token_space, network, context, path, grid_from)


def decoder_names(model: LoadedModel) -> list[str]:
    """Every decoder registered for ``model``'s token space, the default first, installed or not."""
    names = [e.name for e in registry.load_manifest().decoders_of(model.model_id)]
    return [*names, TILED] if TILED not in names and model.has_decoder else names


def default_decoder_name(model: LoadedModel) -> str:
    names = decoder_names(model)
    if not names:
        raise InputError(f"model {model.model_id.hex()} has no decoder; pass one with --decoder")
    return names[0]


def load_decoder(model: LoadedModel, name: str | Path | None = None) -> Decoder:
    """The decoder ``name`` (a registered name or the path of a decoder file) for ``model``'s token space.

    ``None`` is the token space's default: the best decoder registered for it, else ``tiled``.
    """
    if isinstance(name, Path) or (name is not None and str(name).endswith(".safetensors")):
        path = Path(name).resolve()
        return _load_file(model, path, registry.entry_for_path(path))
    name = default_decoder_name(model) if name is None else str(name)
    entries = registry.load_manifest().decoders_of(model.model_id)
    entry = next((e for e in entries if e.name == name), None)
    if entry is None:
        if name == TILED and model.has_decoder:
            return tiled(model)
        known = ", ".join(decoder_names(model)) or "none"
        raise InputError(f"no decoder {name!r} for model {model.model_id.hex()} (known: {known})")
    path = registry.locate(entry)
    if path is None:
        raise UnknownModelError(registry.not_installed(entry))
    return _load_file(model, path.resolve(), entry)


def _load_file(model: LoadedModel, path: Path, entry: registry.Entry | None) -> Decoder:
    """Parse (once per model, file and device) a decoder file; a registered one must match its SHA-256."""
    key = (model.model_id, str(path), str(model.device))
    with _lock:
        if key not in _cache:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise InputError(f"{path}: cannot read decoder file ({exc.strerror})") from None
            if entry is not None:
                registry.verify(path, data, entry)
            _cache[key] = parse_decoder(data, model, path)
        return _cache[key]


def save_decoder(
    network: ConvTokenizer,
    name: str,
    token_space: bytes,
    path: str | Path,
    context: str = "grid",
    grid_from: int = 0,
    weights: str = "fp16",
) -> str:
    """Write a decoder file atomically; returns its SHA-256."""
    from vtcodec.fileio import write_atomic

    data = serialize_decoder(network, name, token_space, context, grid_from, weights)
    write_atomic(Path(path), data, force=True)
    return hashlib.sha256(data).hexdigest()
