"""Grey stays grey, flat stays flat: the tone chunk (vtcodec.metadata.Tone)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageCms

import vtcodec
from vtcodec import container
from vtcodec.metadata import TONE, Tone, apply_tone, from_chunks, tone_of

from .conftest import random_image


def grey_image(width: int, height: int) -> Image.Image:
    return random_image(width, height).convert("L")


@pytest.mark.parametrize("make", [lambda im: im, lambda im: im.convert("RGB")], ids=["mode-L", "rgb-equal"])
def test_grey_images_decode_to_mode_l(tiny_model_path, make):
    image = make(grey_image(70, 50))
    out = vtcodec.decompress(vtcodec.compress(image, 4, model=tiny_model_path), model=tiny_model_path)
    assert out.mode == "L" and out.size == (70, 50)


def test_grey_with_alpha_decodes_to_la(tiny_model_path):
    image = grey_image(40, 30).convert("LA")
    image.putalpha(Image.fromarray(np.tile(np.arange(40, dtype=np.uint8) * 6, (30, 1))))
    out = vtcodec.decompress(vtcodec.compress(image, 4, model=tiny_model_path), model=tiny_model_path)
    assert out.mode == "LA"


def test_colour_images_stay_rgb_and_carry_no_tone(tiny_model_path):
    data = vtcodec.compress(random_image(70, 50), 4, model=tiny_model_path)
    header, _ = container.unpack(data)
    assert header.chunk(TONE) is None
    assert vtcodec.decompress(data, model=tiny_model_path).mode == "RGB"


def test_a_kept_rgb_profile_keeps_a_grey_image_rgb(tiny_model_path):
    image = grey_image(40, 30).convert("RGB")
    image.info["icc_profile"] = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out = vtcodec.decompress(vtcodec.compress(image, 4, model=tiny_model_path, metadata="icc"), model=tiny_model_path)
    assert out.mode == "RGB" and "icc_profile" in out.info


@pytest.mark.parametrize("size", [(1, 1), (3, 2), (200, 150)])
@pytest.mark.parametrize("colour", [(200, 30, 40), (0, 255, 7), (90, 90, 90)])
def test_flat_images_decode_to_their_colour_with_no_tokens(tiny_model_path, size, colour):
    image = Image.new("RGB", size, colour)
    result = vtcodec.encode(image, 8, model=tiny_model_path)
    assert not result.counts.any()
    out = np.asarray(vtcodec.decompress(result.data, model=tiny_model_path))
    expected = colour[0] if colour[0] == colour[1] == colour[2] else colour
    assert (out == np.array(expected, dtype=np.uint8)).all()


def test_flat_images_meet_every_target(tiny_model_path):
    image = Image.new("RGB", (64, 48), (10, 120, 240))
    assert vtcodec.encode(image, psnr=60, model=tiny_model_path).target_met
    budget = vtcodec.encode(image, max_bytes=200, model=tiny_model_path)
    assert len(budget.data) <= 200 and not budget.counts.any()
    with pytest.raises(vtcodec.UsageError):
        vtcodec.encode(image, 9, model=tiny_model_path)  # the count is still checked


def test_a_tiny_image_comes_back_near_its_colours(tiny_model_path):
    pixels = np.array([[[200, 30, 40], [190, 40, 50]]], dtype=np.uint8)
    out = np.asarray(
        vtcodec.decompress(vtcodec.compress(pixels, 8, model=tiny_model_path), model=tiny_model_path)
    ).astype(int)
    assert np.abs(out.reshape(-1, 3).mean(axis=0) - pixels.reshape(-1, 3).mean(axis=0)).max() <= 1


def test_tone_is_measured_only_where_it_pays():
    photo = np.asarray(random_image(64, 64))
    assert tone_of(photo, small=False) is None
    assert tone_of(photo, small=True) == Tone(False, False, tuple(int(v) for v in photo.reshape(-1, 3).mean(0).round()))
    grey = np.repeat(np.asarray(grey_image(20, 10))[..., None], 3, axis=2)
    assert tone_of(grey, small=False).grey


def test_apply_tone_shifts_to_the_mean_and_clips():
    decoded = np.full((4, 4, 3), 100, dtype=np.uint8)
    decoded[0, 0] = 250
    shifted = apply_tone(decoded, Tone(False, False, (110, 100, 90)))
    assert shifted.dtype == np.uint8 and shifted.shape == (4, 4, 3)
    assert np.abs(shifted.reshape(-1, 3).mean(axis=0) - (110, 100, 90)).max() < 1
    assert apply_tone(decoded, Tone(True, False, (100,))).shape == (4, 4)


@pytest.mark.parametrize("data", [b"", b"\x04\x01\x02\x03", b"\x01\x05\x06", b"\x00\x01\x02", b"\x02\x01"])
def test_a_bad_tone_chunk_is_corrupt(data):
    with pytest.raises(vtcodec.FormatError, match="bad tone chunk"):
        from_chunks([(TONE, data)], 4, 4)


def test_batch_and_single_encodes_write_the_same_tone(cli_run, tiny_model_path, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    grey_image(70, 50).save(folder / "grey.png")
    Image.new("RGB", (33, 20), (5, 6, 7)).save(folder / "flat.png")
    model = ["--model", tiny_model_path]
    assert cli_run("encode", folder, "-o", tmp_path / "out", "-t", "4", *model)[0] == 0
    for name in ("grey", "flat"):
        assert cli_run("encode", folder / f"{name}.png", "-o", tmp_path / f"{name}.vtk", "-t", "4", *model)[0] == 0
        assert (tmp_path / "out" / f"{name}.vtk").read_bytes() == (tmp_path / f"{name}.vtk").read_bytes()
    code, out, _ = cli_run("info", tmp_path / "flat.vtk", "--json", *model)
    assert code == 0 and json.loads(out)["tone"] == {"grey": False, "flat": True, "mean": [5, 6, 7]}
    code, out, _ = cli_run("info", tmp_path / "grey.vtk", *model)
    assert "tone: grey (decodes to one channel)" in out
    assert cli_run("decode", tmp_path / "out", "-o", tmp_path / "png", *model)[0] == 0
    with Image.open(tmp_path / "png" / "grey.png") as image:
        assert image.mode == "L"


def test_datasets_decode_grey_and_flat_files_as_decompress_does(tiny_model_path, tmp_path):
    from vtcodec.datasets import TokenShards, VtkFolder
    from vtcodec.datasets.shards import export_shards

    folder = tmp_path / "vtk" / "a"
    folder.mkdir(parents=True)
    images = {"flat": Image.new("RGB", (40, 30), (200, 30, 40)), "grey": grey_image(40, 30)}
    expected = {}
    for name, image in images.items():
        data = vtcodec.compress(image, 4, model=tiny_model_path)
        (folder / f"{name}.vtk").write_bytes(data)
        decoded = np.asarray(vtcodec.decompress(data, model=tiny_model_path))
        expected[name] = np.repeat(decoded[..., None], 3, axis=2) if decoded.ndim == 2 else decoded
    export_shards([tmp_path / "vtk"], tmp_path / "shards", model=vtcodec.load_model(tiny_model_path), quiet=True)
    for dataset in (
        VtkFolder(tmp_path / "vtk", output="image", models=[tiny_model_path]),
        TokenShards(tmp_path / "shards", output="image", models=[tiny_model_path]),
    ):
        decoded = [sample["image"].permute(1, 2, 0).numpy() for sample in dataset]  # in path order: flat, grey
        assert len(decoded) == 2, type(dataset)
        for image, name in zip(decoded, sorted(expected), strict=True):
            assert np.array_equal(image, expected[name]), (type(dataset).__name__, name)
