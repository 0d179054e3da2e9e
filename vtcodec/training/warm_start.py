"""Where a run starts: a tokenizer from a model file (grown layers start as the identity), or a decoder."""

from __future__ import annotations

from dataclasses import replace

import torch

from vtcodec.errors import InputError
from vtcodec.models import ConvTokenizer, build_model
from vtcodec.training.config import DecoderTrainConfig


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


def starting_network(
    init_weights: str, init_decoder: str | None, cfg: DecoderTrainConfig
) -> tuple[ConvTokenizer, DecoderTrainConfig, set[str]]:
    """The network a fresh run starts from, its settings (``grid_from`` mapped) and its fresh parameters.

    The token space's model, with the decoder of ``init_decoder`` (a decoder name or file), else
    the model file's own or its default decoder, grown to ``cfg.architecture`` when set. A
    whole-grid decoder brings its own ``grid_from``, which replaces the config's.
    """
    from vtcodec.decoders import load_decoder
    from vtcodec.models.growth import fresh_parameters, grow_decoder, map_index
    from vtcodec.zoo import load_model

    source = load_model(init_weights)
    if init_decoder or not source.has_decoder:
        decoder = load_decoder(source, init_decoder)
        start = decoder.network
        if decoder.context == "grid":  # a whole-grid decoder carries its own split
            cfg = replace(cfg, grid_from=decoder.grid_from)
    else:
        start = source.model
    model = build_model(start.config)
    model.load_state_dict(start.state_dict())
    if not cfg.architecture:
        return model, cfg, set()
    try:
        grown = grow_decoder(model, **cfg.architecture)
    except (TypeError, ValueError) as exc:
        raise InputError(f"cannot grow the decoder to {cfg.architecture} ({exc})") from None
    return grown, replace(cfg, grid_from=map_index(model, grown, cfg.grid_from)), fresh_parameters(model, grown)
