"""The seam, lattice and flat-texture measures of vtcodec.seams on synthetic images."""

import numpy as np
import pytest

from vtcodec.seams import flat_texture_ratio, lattice_ratio, lattice_share, seam_ratio


def _photo_like(side: int, seed: int = 0) -> np.ndarray:
    """Smooth random waves (no period that divides a tile) plus fine noise, (side, side, 3) uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    smooth = np.full((side, side, 3), 128.0)
    for _ in range(6):
        fy, fx = rng.uniform(-0.03, 0.03, size=2)
        smooth += rng.uniform(5, 20, size=3) * np.sin(2 * np.pi * (fy * yy + fx * xx) + rng.uniform(0, 7))[..., None]
    return np.clip(smooth + rng.normal(0, 8, size=smooth.shape), 0, 255).astype(np.uint8)


def test_seam_ratio_is_one_for_the_original_and_rises_with_steps_at_tile_borders():
    original = _photo_like(256)
    assert seam_ratio(original, original, 128) == pytest.approx(1.0)
    stepped = original.astype(np.int16)
    stepped[:128, :128] += 30  # one tile brighter: steps across its two inner borders
    stepped = np.clip(stepped, 0, 255).astype(np.uint8)
    assert seam_ratio(original, stepped, 128) > 1.5
    with pytest.raises(ValueError, match="two tiles"):
        seam_ratio(original[:100, :100], original[:100, :100], 128)


def test_lattice_share_sees_a_template_in_every_cell_and_not_natural_detail():
    original = _photo_like(512)
    assert lattice_share(original, 32) < 0.1  # 256 blocks: detail averages out
    assert lattice_ratio(original, original, 32) == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    template = np.tile(rng.normal(0, 10, size=(32, 32, 3)), (16, 16, 1))  # the same 32² texture in every cell
    stamped = np.clip(original + template, 0, 255).astype(np.uint8)
    assert lattice_share(stamped, 32) > 0.5
    assert lattice_ratio(original, stamped, 32) > 5
    shifted = np.roll(stamped, 16, axis=1)  # a lattice off the grid is still a lattice at that period
    assert lattice_share(shifted, 32) > 0.5
    with pytest.raises(ValueError, match="two 32-pixel blocks"):
        lattice_share(original[:40, :40], 32)


def test_flat_texture_ratio_sees_dots_on_smooth_surfaces_wherever_their_phase():
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[:256, :256]
    sky = np.repeat((100 + 0.2 * yy + rng.normal(0, 1, size=(256, 256)))[..., None], 3, axis=2)  # smooth left half
    sky[:, 128:] += rng.normal(0, 25, size=(256, 128, 3))  # a textured right half
    original = np.clip(sky, 0, 255).astype(np.uint8)
    assert flat_texture_ratio(original, original) == pytest.approx(1.0)
    blurred = original.copy()
    blurred[:, 128:] = original[:, 128:].mean()  # the texture lost, the smooth half kept
    assert flat_texture_ratio(original, blurred) == pytest.approx(1.0, abs=0.05)
    # 4-pixel dots whose phase drifts with the content, 6 grey levels: no grid-locked measure sees them
    phase = 0.05 * xx + 0.03 * yy
    dots = 6 * np.cos(np.pi * xx / 2 + phase) * np.cos(np.pi * yy / 2 + phase)
    dotted = np.clip(original + dots[..., None], 0, 255).astype(np.uint8)
    assert flat_texture_ratio(original, dotted) > 3
    smoothed = original.astype(np.float64)
    smoothed[:, :128] = 100 + 0.2 * yy[:, :128, None]  # the smooth half without its noise: blur
    assert flat_texture_ratio(original, np.clip(smoothed, 0, 255).astype(np.uint8)) < 0.7
    with pytest.raises(ValueError, match="four 8-pixel blocks"):
        flat_texture_ratio(original[:10, :10], original[:10, :10])
    with pytest.raises(ValueError, match="shapes differ"):
        flat_texture_ratio(original, original[:128])
