"""Decoders of a token space, chosen by name: the registry's, the model file's own, or a blend.

A model file (``vtcodec.zoo``) defines a **token space**: the encoder, the quantizer
and the prior. Its model id is written into every ``.vtk`` file. Decoders are
separate: any decoder registered for a token space decodes every file of it, so a
better decoder upgrades old files without re-encoding them.

- ``tiled``: the token space's own decoder, every tile alone: in its model file, or
  for a token-space file a registered decoder file of that name.
- Decoder files (``vtcodec.decoders.files``), registered with their token space in
  ``vtcodec.registry``, one of them the default; ``--decoder`` also takes the path
  of a decoder file.
- ``--realism`` blends the default decoder's weights toward the ``perceptual`` one's.

Rendering is ``vtcodec.decoders.rendering``.
"""

from __future__ import annotations

import threading
from pathlib import Path

import torch

from vtcodec import registry
from vtcodec.decoders.files import (
    architecture,
    parse_decoder,
)
from vtcodec.decoders.rendering import Decoder, store_weights_for
from vtcodec.errors import InputError, UsageError
from vtcodec.models import ConvTokenizer, declared_network, inference_network
from vtcodec.models.growth import grow_decoder, layer_keys, map_index
from vtcodec.zoo import LoadedModel

TILED = registry.TILED
PERCEPTUAL = "perceptual"  # the decoder that --realism 1 gives; 0 is the token space's default decoder

_cache: dict[tuple[bytes, str, str, str], Decoder] = {}
_blends: dict[tuple[bytes, str, str, float], Decoder] = {}
_lock = threading.Lock()


def tiled(model: LoadedModel) -> Decoder:
    """The token space's own decoder, each tile alone: the model file's, or its registered ``tiled`` decoder."""
    if model.has_decoder:
        return Decoder(TILED, model.model_id, model.model, "tile", model.path)
    return load_decoder(model, TILED)


def blendable(*decoders: Decoder) -> bool:
    """Whether ``decoders`` share a token space, a context and one set of weight shapes."""
    first, weights = decoders[0], [d.network.state_dict() for d in decoders]
    return all(
        (d.token_space, d.context, d.grid_from) == (first.token_space, first.context, first.grid_from)
        and w.keys() == weights[0].keys()
        and all(w[k].shape == weights[0][k].shape for k in w)
        for d, w in zip(decoders, weights, strict=True)
    )


def blend(fidelity: Decoder, realism: Decoder, weight: float) -> Decoder:
    """A decoder whose weights are ``(1 - weight) * fidelity + weight * realism``: one decode's cost.

    Both must be decoders of one token space with one shape (the perceptual decoder is
    fine-tuned from the fidelity one, so the path between them stays in one basin).
    """
    if not 0.0 <= weight <= 1.0:
        raise UsageError(f"realism must be in 0 ... 1 (got {weight})")
    if weight in (0.0, 1.0):
        return realism if weight else fidelity
    if not blendable(fidelity, realism):
        raise InputError(f"decoders {fidelity.name!r} and {realism.name!r} cannot be blended (different shapes)")
    a, b = fidelity.network.state_dict(), realism.network.state_dict()
    key = (fidelity.token_space, fidelity.name, realism.name, round(weight, 4))
    with _lock:
        if key not in _blends:
            mixed = {k: torch.lerp(a[k].float(), b[k].float(), weight) if a[k].is_floating_point() else a[k] for k in a}
            network = inference_network(declared_network(fidelity.network.config), mixed)
            network = network.to(fidelity.device, memory_format=torch.channels_last)
            store_weights_for(network, fidelity.device, fidelity.precision)  # as its ends were loaded
            name = f"{fidelity.name}+{realism.name}@{weight:g}"
            _blends[key] = Decoder(
                name, fidelity.token_space, network, fidelity.context, None, fidelity.grid_from, fidelity.precision
            )
        return _blends[key]


def carry_blend(point: Decoder, old_base: Decoder, new_base: Decoder, share: float) -> Decoder:
    """``point + share * (new_base - old_base)``: a blend made on ``old_base``, carried onto ``new_base``.

    ``point`` was made as ``share * old_base + (1 - share) * R``; the result is
    ``share * new_base + (1 - share) * R`` without R's weights. If ``new_base`` was grown
    from ``old_base`` by added blocks (``vtcodec.models.growth``), ``point`` and ``old_base``
    are grown to its shape first and the added blocks are ``new_base``'s own.
    ``new_base`` may belong to another token space, fine-tuned from ``old_base``'s together
    with its encoder; with ``share = 1`` the result is ``new_base + (point - old_base)``,
    the point's whole difference carried over, and it decodes ``new_base``'s token space.
    """
    if not blendable(point, old_base):
        raise InputError(f"decoders {point.name!r} and {old_base.name!r} cannot be blended (different shapes)")
    if point.token_space != old_base.token_space:
        raise InputError(f"decoders {point.name!r} and {old_base.name!r} decode different token spaces")
    if point.context != new_base.context:
        raise InputError(f"decoder {new_base.name!r} has another context")
    p_net, a_net, b_net = point.network, old_base.network, new_base.network
    grid_from, added = point.grid_from, set()
    old_shape, new_shape = architecture(p_net), architecture(b_net)
    if old_shape != new_shape:
        if old_shape["decoder_hidden"] != new_shape["decoder_hidden"]:
            raise InputError(f"decoder {new_base.name!r} was not grown from {old_base.name!r} by added blocks")
        try:
            grown_p, grown_a = (grow_decoder(n, **new_shape) for n in (p_net, a_net))
        except ValueError as exc:
            raise InputError(f"decoder {new_base.name!r} was not grown from {old_base.name!r}: {exc}") from None
        old_keys = set(layer_keys(p_net.decoder))
        added = {i for i, key in enumerate(layer_keys(grown_p.decoder)) if key not in old_keys}
        grid_from = map_index(p_net, grown_p, point.grid_from)
        p_net, a_net = grown_p, grown_a
    p, a, b = (n.state_dict() for n in (p_net, a_net, b_net))
    if p.keys() != b.keys() or any(p[k].shape != b[k].shape for k in p) or grid_from != new_base.grid_from:
        raise InputError(f"decoder {new_base.name!r} was not grown from {old_base.name!r} by added blocks")

    def carried(key: str) -> torch.Tensor:
        if not p[key].is_floating_point():
            return p[key]
        parts = key.split(".")
        if parts[0] == "decoder" and int(parts[1]) in added:
            return b[key].float()  # a block only the new base has
        return p[key].float() + share * (b[key].float() - a[key].float())

    network = inference_network(declared_network(b_net.config), {k: carried(k) for k in p})
    return Decoder(point.name, new_base.token_space, network, point.context, None, grid_from)


def choose(model: LoadedModel, name: str | Path | None = None, realism: float | None = None) -> Decoder:
    """The decoder ``name`` (None: the default), or with ``realism`` the default blended toward ``perceptual``."""
    if realism is None:
        return load_decoder(model, name)
    if name is not None:
        raise UsageError("give a decoder or a realism, not both")
    if PERCEPTUAL not in decoder_names(model):
        raise InputError(f"model {model.model_id.hex()} has no {PERCEPTUAL!r} decoder, so no realism setting")
    return blend(load_decoder(model), load_decoder(model, PERCEPTUAL), float(realism))


def full_network(model: LoadedModel) -> ConvTokenizer:
    """The token space's network with a decoder (to train from): the model file's own, else its default
    decoder's, with the file's exact (float32) weights."""
    return model.model if model.has_decoder else load_decoder(model, precision="float32").network


def decoder_names(model: LoadedModel, installed_only: bool = False) -> list[str]:
    """Every decoder registered for ``model``'s token space, the default first, installed or not
    (``installed_only``: those whose file is here, and the model file's own)."""
    return registry.decoder_names(model.model_id, model.has_decoder, installed_only)


def default_decoder_name(model: LoadedModel) -> str:
    names = decoder_names(model)
    if not names:
        raise InputError(f"model {model.model_id.hex()} has no decoder; pass one with --decoder")
    return names[0]


def load_decoder(model: LoadedModel, name: str | Path | None = None, precision: str = "auto") -> Decoder:
    """The decoder ``name`` (a registered name or the path of a decoder file) for ``model``'s token space.

    ``None`` is the token space's default: the best decoder registered for it, else ``tiled``.
    ``precision`` (``rendering.PRECISIONS``) is the arithmetic it decodes in; ``"float32"`` also
    keeps the file's exact weights (training starts from them).
    """
    if isinstance(name, Path) or (name is not None and str(name).endswith(".safetensors")):
        path = Path(name).resolve()
        return _load_file(model, path, registry.entry_for_path(path), precision)
    name = default_decoder_name(model) if name is None else str(name)
    entries = registry.load_manifest().decoders_of(model.model_id)
    entry = next((e for e in entries if e.name == name), None)
    if entry is None:
        if name == TILED and model.has_decoder:
            return tiled(model)
        known = ", ".join(decoder_names(model)) or "none"
        raise InputError(f"no decoder {name!r} for model {model.model_id.hex()} (known: {known})")
    return _load_file(model, registry.installed(entry).resolve(), entry, precision)


def _load_file(model: LoadedModel, path: Path, entry: registry.Entry | None, precision: str) -> Decoder:
    """Parse (once per model, file, device and precision) a decoder file; a registered one must match its SHA-256."""
    key = (model.model_id, str(path), str(model.device), precision)
    with _lock:
        if key not in _cache:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise InputError(f"{path}: cannot read decoder file ({exc.strerror})") from None
            if entry is not None:
                registry.verify(path, data, entry)
            _cache[key] = parse_decoder(data, model, path, precision)
        return _cache[key]
