"""Where a run starts: a tokenizer from a model file (grown layers start as the identity), or a decoder."""

from __future__ import annotations

from dataclasses import replace

import torch

from vtcodec.decoders import full_network, load_decoder
from vtcodec.errors import InputError
from vtcodec.models import ConvTokenizer, build_model
from vtcodec.models.growth import fresh_parameters, grow_decoder, map_index
from vtcodec.models.tokenizer import DECODER_ARCHITECTURE, ResBlock, TokenizerConfig
from vtcodec.training.config import DecoderTrainConfig
from vtcodec.zoo import load_model


def warm_start(model: torch.nn.Module, weights: str) -> None:
    """Copy every tensor of a model file whose name matches; report the rest.

    A tensor that grew (same rank, no dimension smaller, e.g. more token groups)
    gets the source copied into its leading corner and keeps its fresh values
    elsewhere, so a model with more groups starts as its source for short prefixes.
    Residual blocks the target has in addition (deeper stages) keep their fresh,
    identity-at-start values; the source's layers move to their aligned places.
    """

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
    whole-grid decoder brings its own ``grid_from``, which replaces the config's, unless the run starts a
    new decoder of other widths (``decoder_channels``).
    """

    source = load_model(init_weights)
    configured = cfg  # a new decoder (other widths) keeps the config's own split
    if init_decoder or not source.has_decoder:
        decoder = load_decoder(source, init_decoder, precision="float32")  # the file's exact weights
        start = decoder.network
        if decoder.context == "grid":  # a whole-grid decoder carries its own split
            cfg = replace(cfg, grid_from=decoder.grid_from)
    else:
        start = source.model
    model = build_model(start.config)
    model.load_state_dict(start.state_dict())
    architecture = dict(cfg.architecture or {})
    fresh: set[str] = set()
    if "encoder_blocks" in architecture:  # a new token space: the run must train the encoder too
        if not cfg.train_encoder:
            raise InputError('growing the encoder needs "train_encoder": true')
        model, fresh = grow_encoder(model, int(architecture.pop("encoder_blocks")))
    if not architecture:
        return model, cfg, fresh
    if "decoder_channels" in architecture:  # other widths cannot grow from the old decoder: a new one
        model, new = fresh_decoder(model, architecture)
        if configured.grid_from > len(model.decoder):
            raise InputError(f"grid_from {configured.grid_from} is past the new decoder's {len(model.decoder)} layers")
        return model, replace(cfg, grid_from=configured.grid_from), fresh | new
    try:
        grown = grow_decoder(model, **architecture)
    except (TypeError, ValueError) as exc:
        raise InputError(f"cannot grow the decoder to {architecture} ({exc})") from None
    grid_from = map_index(model, grown, cfg.grid_from)
    return grown, replace(cfg, grid_from=grid_from), fresh | fresh_parameters(model, grown)


def fresh_decoder(network: ConvTokenizer, architecture: dict) -> tuple[ConvTokenizer, set[str]]:
    """A copy of ``network``'s token space with a new, randomly initialised decoder of ``architecture``
    (decoder keys, ``decoder_channels`` among them), and the new decoder's parameter names.

    The encoder, the quantizer and the fine-token head are copied, so the tokens stay the same; the
    absent-token vectors are copied as a start.
    """
    unknown = set(architecture) - set(DECODER_ARCHITECTURE)
    if unknown:
        raise InputError(f"a new decoder takes only decoder keys, not {', '.join(sorted(unknown))}")
    try:
        target = build_model(TokenizerConfig.from_dict({**network.config.to_dict(), **architecture}))
    except (TypeError, ValueError) as exc:
        raise InputError(f"cannot build the decoder {architecture} ({exc})") from None
    state = target.state_dict()
    new = {name for name, _ in target.named_parameters() if name.startswith(("decoder.", "fine_in."))}
    for name, value in network.state_dict().items():
        if name in state and name not in new:
            state[name] = value.clone()
    target.load_state_dict(state)
    return target, new


def grow_encoder(network: ConvTokenizer, encoder_blocks: int) -> tuple[ConvTokenizer, set[str]]:
    """A copy of ``network`` with ``encoder_blocks`` residual blocks per encoder stage, and its new parameters.

    The new blocks start as the identity (their last convolution is zero), so the copy makes the
    same tokens and pixels until it trains.
    """
    if encoder_blocks < network.config.stage_blocks("encoder"):
        raise InputError(
            f"the encoder can only grow (it has {network.config.stage_blocks('encoder')} blocks per stage)"
        )
    grown = build_model(replace(network.config, encoder_blocks=encoder_blocks))
    renamed = aligned_names(network, grown)
    state = {renamed.get(name, name): value for name, value in network.state_dict().items()}
    target = grown.state_dict()
    if set(state) - set(target) or any(state[k].shape != target[k].shape for k in state):
        raise InputError("cannot grow the encoder: its layers do not align")
    grown.load_state_dict(state, strict=False)
    fresh = {name for name, _ in grown.named_parameters() if name not in state}
    return grown, fresh
