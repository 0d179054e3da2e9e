"""The TiTok family (TiTok, One-D-Piece) against fixtures from the reference code.

``tests/fixtures/titok/make_fixtures.py`` ran the published code (outside this project) with
weights from ``vtcodec.models.deterministic``; here the same rule fills our implementation,
which must give the same tokens and the same pixels (float16 fixtures: within 1e-3 relative).
Each case also shows the check can fail: a crop decoded from the *other* crop's tokens misses
the fixture by far more than the tolerance.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vtcodec.models.deterministic import deterministic_state, deterministic_tensor, uniform
from vtcodec.models.titok import PRESETS, TiTokConfig, TiTokTokenizer

FIXTURES = Path(__file__).parent / "fixtures" / "titok"
CASES = sorted(p.stem for p in FIXTURES.glob("*.npz"))
RTOL, ATOL = 1e-3, 1e-3  # float16 fixtures (half an ulp: 2**-11 relative) and float32 kernels that differ by batch size
MARGIN = 50  # a wrong decode must miss by at least this many tolerances


def crops(size: int) -> np.ndarray:
    from PIL import Image

    image = np.asarray(Image.open(Path(__file__).parents[1] / "samples" / "parrots.png").convert("RGB"))
    h, w = image.shape[:2]
    parts = [image[:size, :size], image[h - size :, w - size :]]
    return np.stack([p.transpose(2, 0, 1) for p in parts]).astype(np.float32) / 255.0


@functools.cache
def build(name: str) -> tuple[TiTokTokenizer, dict, np.lib.npyio.NpzFile]:
    fixture = np.load(FIXTURES / f"{name}.npz")
    meta = json.loads(str(fixture["meta"]))
    family = "one-d-piece" if name.startswith("one-d-piece") else "titok"
    model = TiTokTokenizer(TiTokConfig.from_published(meta["config"], family)).eval()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    model.load_state_dict(deterministic_state(shapes, meta["gain"], meta["embed"]))
    return model, meta, fixture


def sampled(pixels: torch.Tensor) -> np.ndarray:
    step = 4 if pixels.shape[-1] > 64 else 1
    return pixels[..., ::step, ::step].float().numpy()


def excess(ours: np.ndarray, reference: np.ndarray) -> float:
    """The largest |ours - reference| in units of the tolerance (<= 1 passes)."""
    return float((np.abs(ours - reference) / (ATOL + RTOL * np.abs(reference))).max())


@pytest.mark.parametrize("name", CASES)
@torch.no_grad()
def test_matches_reference(name: str) -> None:
    model, meta, fixture = build(name)
    tiles = torch.from_numpy(crops(model.tile_size))
    ids = model.encode(tiles)
    np.testing.assert_array_equal(ids.numpy(), fixture["tokens"])
    full = model._render(ids)  # unclamped, as the reference returns it
    assert excess(sampled(full), fixture["full"].astype(np.float32)) <= 1
    wrong = model._render(ids[1:])  # the first crop from the second crop's tokens
    assert excess(sampled(wrong), fixture["full"][:1].astype(np.float32)) > MARGIN
    for n in meta["prefixes"]:  # the first crop's prefixes
        prefix = model._render(ids[:1, :n])
        assert excess(sampled(prefix), fixture[f"prefix{n}"][:1].astype(np.float32)) <= 1


def test_legacy_flag_changes_every_token() -> None:
    model, _, fixture = build("titok-s-legacy-crop64")
    flipped = TiTokTokenizer(TiTokConfig(**{**model.config.to_dict(), "is_legacy": False})).eval()
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(("pixel_", "decoder.ffn"))}
    flipped.load_state_dict(state, strict=False)
    ids = flipped.encode(torch.from_numpy(crops(64)))
    assert (ids.numpy() != fixture["tokens"]).mean() > 0.9


def test_decode_keeps_prefixes_per_tile_and_fixed_length_refuses_them() -> None:
    model, _, fixture = build("one-d-piece-s-crop64")
    ids = torch.from_numpy(fixture["tokens"].astype(np.int64))
    mixed = model.decode(ids, torch.tensor([5, 64])).numpy()  # the first crop's 5 tokens, the second's 64
    assert excess(mixed[:1], np.clip(fixture["prefix5"][:1].astype(np.float32), 0, 1)) <= 1
    assert excess(mixed[1:], np.clip(fixture["full"][1:].astype(np.float32), 0, 1)) <= 1
    titok, _, fixture = build("titok-s-legacy-crop64")
    ids = torch.from_numpy(fixture["tokens"].astype(np.int64))
    with pytest.raises(ValueError, match="only all 32 tokens"):
        titok.decode(ids, torch.tensor([32, 16]))


def test_deterministic_rule() -> None:
    a = uniform("encoder.ln_pre.weight", 1000)
    assert np.array_equal(a, uniform("encoder.ln_pre.weight", 1000))
    assert 0 <= a.min() and a.max() < 1 and abs(a.mean() - 0.5) < 0.05
    assert not np.array_equal(a, uniform("encoder.ln_pre.bias", 1000))
    weight = deterministic_tensor("x.weight", (64, 32))
    assert abs(float(weight.abs().max()) - np.sqrt(3 / 32)) < 0.01  # uniform in ±sqrt(3 / fan_in)
    norm = 1 + 0.1 * (2 * torch.from_numpy(uniform("x.weight", 8)).float() - 1)
    assert torch.allclose(deterministic_tensor("x.weight", (8,)), norm)


def test_presets_and_published_configs() -> None:
    assert PRESETS["titok-s128"].max_tokens == 128 and not PRESETS["titok-s128"].any_prefix
    assert PRESETS["one-d-piece-s256"].any_prefix
    with torch.device("meta"):
        count = sum(p.numel() for p in TiTokTokenizer(PRESETS["one-d-piece-s256"]).parameters())
    assert 83e6 < count < 85e6  # One-D-Piece S: 84 M parameters (the count)
    with pytest.raises(ValueError, match="VQ"):
        TiTokConfig.from_published({"model": {"vq_model": {"quantize_mode": "vae"}}}, "titok")
