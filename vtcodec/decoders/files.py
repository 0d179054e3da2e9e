"""Decoder files (``*.decoder.safetensors``): a decoder's tensors and what it is for.

The tensors are the decoder's layers (``registry.DECODER_PREFIXES``), stored as fp16, or as
int8 with an fp16 scale per output channel (``"weights": "int8"``; the int8 tensor
``NAME`` has its scales in ``scale:NAME``; tensors of one dimension stay fp16). The JSON
metadata under ``vtcodec.decoder`` names the decoder, its token space (a model id), its
context (``tile`` or ``grid``), the first layer that sees the whole grid, and the
decoder-only hyper-parameters (``vtcodec.models.growth`` grows decoders into them).
Nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Container
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load as load_numpy
from safetensors.torch import save as save_torch

from vtcodec.decoders.rendering import (
    CONTEXTS,
    Decoder,
    decodes_in_bf16,
    low_precision_names,
    receptive_radius,
)
from vtcodec.errors import InputError, UnknownModelError
from vtcodec.fileio import write_atomic
from vtcodec.models import ConvTokenizer, TokenizerConfig, declared_network, inference_network
from vtcodec.models.tokenizer import DECODER_ARCHITECTURE
from vtcodec.registry import DECODER_PREFIXES
from vtcodec.zoo import LoadedModel, check_tensors

DECODER_KEY = "vtcodec.decoder"
WEIGHT_FORMATS = ("fp16", "int8")  # how a decoder file stores its tensors (serialize_decoder)
SCALE_PREFIX = "scale:"  # int8 decoder files: the per-channel scale of tensor NAME is "scale:NAME"


def quantize_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per output channel: (int8 values, fp16 scale per channel); ``values * scale`` ~ weight."""
    rows = weight.detach().float().reshape(len(weight), -1)
    scale = (rows.abs().amax(dim=1) / 127).to(torch.float16).float()
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    values = (rows / scale.unsqueeze(1)).round().clamp(-127, 127).to(torch.int8)
    return values.reshape(weight.shape).contiguous(), scale.to(torch.float16)


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


def _dequantize(
    tensors: dict[str, np.ndarray], weights: str, low_precision: Container[str] = frozenset()
) -> dict[str, torch.Tensor]:
    """A decoder file's tensors as float32, int8 ones times their per-channel scale; those named in
    ``low_precision`` then rounded to bfloat16, 4-d ones in channels_last. One tensor at a time, each
    file array dropped as it is done: the weights never exist twice, nor in float32 all at once."""
    scales = {k[len(SCALE_PREFIX) :]: v for k, v in tensors.items() if k.startswith(SCALE_PREFIX)}
    if weights == "fp16" and scales:
        raise ValueError("scales in an fp16 decoder file")
    orphans = [key for key in scales if key not in tensors]
    if orphans:
        raise ValueError(f"a scale without its tensor: {SCALE_PREFIX}{orphans[0]}")
    out = {}
    for key in [k for k in tensors if not k.startswith(SCALE_PREFIX)]:
        value = tensors.pop(key)
        if value.dtype == np.int8:
            scale = scales.get(key)
            if scale is None or scale.shape != (len(value),):
                raise ValueError(f"int8 tensor {key} without a scale per output channel")
            value = value.astype(np.float32) * scale.astype(np.float32).reshape(-1, *([1] * (value.ndim - 1)))
        tensor = torch.from_numpy(value.astype(np.float32, copy=False))
        if key in low_precision:
            tensor = tensor.to(torch.bfloat16)
        # channels_last: 1.3x faster convolutions on this CPU (benchmarks/decoder_eval.py)
        out[key] = tensor.contiguous(memory_format=torch.channels_last) if tensor.dim() == 4 else tensor
    return out


def architecture(network: ConvTokenizer) -> dict:
    """The decoder-only hyper-parameters of ``network`` (lists for tuples), as a decoder file records them."""
    config = network.config
    shape = {
        "decoder_blocks": list(config.decoder_stage_blocks()),
        "decoder_hidden": list(config.decoder_stage_hidden()),
        "decoder_attention": config.decoder_attention,
    }
    if config.decoder_channels is not None:  # only then, so that earlier decoder files' headers are unchanged
        shape["decoder_channels"] = list(config.decoder_channels)
    return shape


def _decoder_config(model: LoadedModel, arch: object) -> TokenizerConfig:
    """The token space's config with a decoder file's architecture keys (none: the token space's own decoder)."""
    if not isinstance(arch, dict) or set(arch) - set(DECODER_ARCHITECTURE):
        raise ValueError(f"architecture {arch!r}")
    config = TokenizerConfig.from_dict({**model.config.to_dict(), **arch})  # JSON lists become tuples there
    blocks, hidden = config.decoder_stage_blocks(), config.decoder_stage_hidden()  # validates them
    if max(blocks) > 64 or max(hidden + config.decoder_widths()) > 4096 or not 0 <= config.decoder_attention <= 64:
        raise ValueError(f"architecture {arch!r} out of range")
    return config


def parse_decoder(data: bytes, model: LoadedModel, path: Path | None = None, precision: str = "auto") -> Decoder:
    """A decoder from the bytes of a decoder file, for ``model``'s token space, to decode at ``precision``
    (``rendering.PRECISIONS``); one that decodes in bfloat16 keeps its weights in bfloat16."""
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
        # Names and shapes against the declared architecture before anything is built or dequantized.
        network = declared_network(config)  # on the meta device
        declared = {k: tuple(v.shape) for k, v in network.state_dict().items() if k.startswith(DECODER_PREFIXES)}
        check_tensors(declared, {k: v for k, v in tensors.items() if not k.startswith(SCALE_PREFIX)})
        # stored as they will decode: bfloat16 where store_weights_for would put them (the same values)
        low = low_precision_names(network) if decodes_in_bf16(network, model.device, precision) else set()
        tensors = _dequantize(tensors, meta.get("weights", "fp16"), low)
    except (SafetensorError, KeyError, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: not a valid vtcodec decoder file ({exc})") from None
    if token_space != model.model_id:
        raise UnknownModelError(
            f"{where}: decoder {name!r} is for model {token_space.hex()}, not {model.model_id.hex()}"
        )
    # The token space's own tensors are shared, not copied (training builds its own network from them).
    state = {k: v for k, v in model.model.state_dict().items() if not k.startswith(DECODER_PREFIXES)}
    state.update(tensors)
    try:
        network = inference_network(network, state)
    except (ValueError, RuntimeError) as exc:
        raise InputError(f"{where}: decoder does not fit model {model.model_id.hex()} ({exc})") from None
    if not 0 <= grid_from <= len(network.decoder):
        raise InputError(f"{where}: not a valid vtcodec decoder file (grid_from {grid_from})")
    try:
        receptive_radius(network, grid_from if context == "grid" else len(network.decoder))
    except ValueError as exc:
        raise InputError(f"{where}: not a valid vtcodec decoder file ({exc})") from None
    network = network.to(model.device, memory_format=torch.channels_last)  # the weights came as they will decode
    return Decoder(name, token_space, network, context, path, grid_from, precision)


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

    data = serialize_decoder(network, name, token_space, context, grid_from, weights)
    write_atomic(Path(path), data, force=True)
    return hashlib.sha256(data).hexdigest()
