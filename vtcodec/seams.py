"""Structure that a decoder adds and the original lacks: the seam ratio (tile borders), the
lattice ratio (a pattern repeated in every token cell) and the flat-texture ratio (fine
detail where the original is smooth, wherever its phase)."""

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


def _high_pass(x: np.ndarray, radius: int = 2) -> np.ndarray:
    """``x`` less its (2 * radius + 1)² box mean (edges replicated): the image's fine detail."""
    side = 2 * radius + 1
    padded = np.pad(x, ((radius, radius), (radius, radius), (0, 0)), mode="edge")
    summed = np.cumsum(np.cumsum(padded, axis=0), axis=1)
    summed = np.pad(summed, ((1, 0), (1, 0), (0, 0)))
    h, w = x.shape[:2]
    box = summed[side:, side:] - summed[:-side, side:][:h] - summed[side:, :-side][:, :w] + summed[:h, :w]
    return x - box[:h, :w] / side**2


def lattice_share(pixels: np.ndarray, period: int) -> float:
    """The share of an image's fine detail that repeats with the pixel grid at ``period``.

    The high-passed image is cut into whole ``period``² blocks; their mean is the pattern that
    every block has in common. Returns its RMS over the RMS of the high-passed image: natural
    detail averages out across blocks (a few per cent, less in larger images), a texture template
    that a decoder stamps into every cell does not.
    """
    x = _high_pass(pixels.astype(np.float64))
    rows, cols = x.shape[0] // period, x.shape[1] // period
    if rows * cols < 2:
        raise ValueError(f"the image needs at least two {period}-pixel blocks")
    blocks = x[: rows * period, : cols * period].reshape(rows, period, cols, period, -1)
    pattern = blocks.mean(axis=(0, 2))
    pattern = pattern - pattern.mean(axis=(0, 1))
    return float(np.sqrt((pattern**2).mean()) / max(np.sqrt((x**2).mean()), 1e-9))


def lattice_ratio(original: np.ndarray, decoded: np.ndarray, period: int) -> float:
    """``lattice_share`` of ``decoded`` over that of ``original``: 1.0 as in the original, above 1 a lattice."""
    return lattice_share(decoded, period) / max(lattice_share(original, period), 1e-9)


def flat_texture_ratio(original: np.ndarray, decoded: np.ndarray, block: int = 8, share: float = 0.25) -> float:
    """Fine detail in the smoothest places of ``original``: RMS in ``decoded`` over RMS in ``original``.

    Both images are high-passed and cut into ``block``² blocks; the ``share`` of blocks with
    the least detail in the original are its smooth surfaces (sky, walls, skin). Returns the
    RMS of ``decoded``'s detail there over the original's (floored at half a grey level, so a
    flat synthetic image does not divide by zero). Blur gives below 1; texture that a decoder
    lays over smooth surfaces, locked to a grid or following the content, gives above 1.
    """
    if original.shape != decoded.shape:
        raise ValueError(f"shapes differ: {original.shape} and {decoded.shape}")
    rows, cols = original.shape[0] // block, original.shape[1] // block
    if rows * cols < 4:
        raise ValueError(f"the image needs at least four {block}-pixel blocks")

    def block_energy(pixels: np.ndarray) -> np.ndarray:
        x = _high_pass(pixels.astype(np.float64))[: rows * block, : cols * block]
        return (x**2).reshape(rows, block, cols, block, -1).mean(axis=(1, 3, 4)).ravel()

    energy_original, energy_decoded = block_energy(original), block_energy(decoded)
    flat = energy_original <= np.quantile(energy_original, share)
    return float(np.sqrt(energy_decoded[flat].mean()) / max(np.sqrt(energy_original[flat].mean()), 0.5))
