"""Deterministic weights: every tensor's values from its name and shape, with no random state.

Used to check a re-implementation against reference code without the real weights: both
networks are filled by :func:`deterministic_state`, run on the same inputs, and must agree.

The rule, for a tensor named ``name`` with ``n`` elements (flat index ``i``):

1. ``seed = crc32(name)`` (``zlib.crc32`` of the UTF-8 name);
2. ``u_i``: the SplitMix64 finaliser of ``seed * 2**32 + i``, its top 53 bits as a number in [0, 1);
3. ``v_i = 2 * u_i - 1`` (uniform in [-1, 1)), then by kind (the tensor's last name part and rank):
   - ``weight`` of rank >= 2 (linear, convolution, attention projections):
     ``v * gain * sqrt(3 / fan_in)``, ``fan_in`` the product of all dimensions but the first;
   - ``weight`` of rank 1 (layer and group norms): ``1 + 0.1 * v``;
   - ``bias`` and ``*_bias``: ``0.1 * v``;
   - anything else (embeddings, codebooks, learned tokens): ``v * embed``.

``gain`` and ``embed`` are arguments, so a check can choose how strongly outputs depend on inputs.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

import numpy as np
import torch

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def uniform(name: str, count: int) -> np.ndarray:
    """``count`` float64 values in [0, 1) from ``name`` alone (SplitMix64 of crc32(name) * 2**32 + index)."""
    seed = np.uint64(zlib.crc32(name.encode()))
    with np.errstate(over="ignore"):
        z = (np.arange(count, dtype=np.uint64) + (seed << np.uint64(32))) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def deterministic_tensor(name: str, shape: tuple[int, ...], gain: float = 1.0, embed: float = 0.5) -> torch.Tensor:
    """The float32 tensor the rule gives for ``name`` and ``shape``."""
    count = int(np.prod(shape)) if shape else 1
    values = 2.0 * uniform(name, count) - 1.0
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "weight" and len(shape) >= 2:
        values *= gain * np.sqrt(3.0 / max(int(np.prod(shape[1:])), 1))
    elif leaf == "weight":
        values = 1.0 + 0.1 * values
    elif leaf == "bias" or leaf.endswith("_bias"):
        values *= 0.1
    else:
        values *= embed
    return torch.from_numpy(values.astype(np.float32).reshape(shape))


def deterministic_state(
    shapes: Mapping[str, tuple[int, ...]], gain: float = 1.0, embed: float = 0.5
) -> dict[str, torch.Tensor]:
    """A state dict of :func:`deterministic_tensor` for every name and shape in ``shapes``."""
    return {name: deterministic_tensor(name, tuple(shape), gain, embed) for name, shape in shapes.items()}
