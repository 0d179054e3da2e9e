"""How visible tile borders are: the seam ratio of a decoded image against its original."""

from __future__ import annotations

import numpy as np


def border_steps(pixels: np.ndarray, tile: int) -> tuple[float, float]:
    """Mean absolute step between neighbouring pixels across tile borders, and elsewhere.

    ``pixels`` is (H, W, 3); steps are taken along both axes, over all channels.
    """
    x = pixels.astype(np.float64)
    dx = np.abs(np.diff(x, axis=1))  # step between column j and j + 1
    dy = np.abs(np.diff(x, axis=0))
    at_x = (np.arange(dx.shape[1]) + 1) % tile == 0
    at_y = (np.arange(dy.shape[0]) + 1) % tile == 0
    border = np.concatenate([dx[:, at_x].ravel(), dy[at_y].ravel()])
    inner = np.concatenate([dx[:, ~at_x].ravel(), dy[~at_y].ravel()])
    if not border.size or not inner.size:
        raise ValueError("the image needs at least two tiles along one side")
    return float(border.mean()), float(inner.mean())


def seam_ratio(original: np.ndarray, decoded: np.ndarray, tile: int) -> float:
    """(border step / inner step) of ``decoded`` over the same ratio of ``original``.

    1.0: tile borders look like any other place in the picture, as in the original;
    above 1: seams. Normalizing by the inner step keeps a blurrier decode from
    hiding its seams behind smaller steps everywhere.
    """
    border_dec, inner_dec = border_steps(decoded, tile)
    border_org, inner_org = border_steps(original, tile)
    return (border_dec / max(inner_dec, 1e-9)) / max(border_org / max(inner_org, 1e-9), 1e-9)
