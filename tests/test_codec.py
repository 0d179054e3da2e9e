import numpy as np
import pytest
import torch
from PIL import Image

import vtcodec
from vtcodec.codec import tokenize
from vtcodec.errors import FormatError, InputError, UnknownModelError
from vtcodec.imageio import to_rgb
from vtcodec.pipeline import read_tokens

from .conftest import random_image


@pytest.mark.parametrize("size", [(1, 1), (1, 5), (5, 1), (32, 32), (33, 31), (70, 45)])
def test_round_trip_tokens_and_size(tiny_model, size):
    image = random_image(*size)
    data = vtcodec.compress(image, tokens=5, model=tiny_model)
    pixels = np.asarray(image)
    if (pixels == pixels[0, 0]).all():  # a flat image needs no tokens: its tone chunk holds the colour
        assert not read_tokens(data, tiny_model).header.token_counts.any()
        assert np.array_equal(np.asarray(vtcodec.decompress(data, model=tiny_model)), pixels)
        return
    expected = tokenize(image, tiny_model).ids[:, :5]
    assert np.array_equal(read_tokens(data, tiny_model).ids, expected)
    out = vtcodec.decompress(data, model=tiny_model)
    assert out.size == size and out.mode == "RGB"


def test_per_tile_counts_and_zero_tokens(tiny_model):
    image = random_image(64, 64)
    data = vtcodec.compress(image, tokens=[0, 3, 8, 1], model=tiny_model)
    stream = read_tokens(data, tiny_model)
    assert stream.header.token_counts.tolist() == [0, 3, 8, 1]
    assert vtcodec.decompress(data, model=tiny_model).size == (64, 64)


def test_preview_tokens_equal_a_shorter_encode(tiny_model):
    image = random_image(64, 40)
    full = vtcodec.compress(image, tokens=8, model=tiny_model)
    short = vtcodec.compress(image, tokens=3, model=tiny_model)
    preview = np.asarray(vtcodec.decompress(full, tokens=3, model=tiny_model))
    assert np.array_equal(preview, np.asarray(vtcodec.decompress(short, model=tiny_model)))


def test_bad_token_counts(tiny_model):
    with pytest.raises(InputError):
        vtcodec.compress(random_image(8, 8), tokens=9, model=tiny_model)
    with pytest.raises(InputError):
        vtcodec.compress(random_image(8, 8), tokens=-1, model=tiny_model)


def test_unknown_model_id(tiny_model):
    data = vtcodec.compress(random_image(8, 8), tokens=2, model=tiny_model)
    with pytest.raises(UnknownModelError):
        vtcodec.decompress(data)  # only the shipped models are searched


def test_tile_size_mismatch_is_corrupt(tiny_model):
    from vtcodec import container

    data = vtcodec.compress(random_image(8, 8), tokens=2, model=tiny_model)
    header, payload = container.unpack(data)
    forged = container.pack(container.Header(header.model_id, 8, 8, 64, header.token_counts, header.coder), payload)
    with pytest.raises(FormatError):
        vtcodec.decompress(forged, model=tiny_model)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("L", (100, 100, 100)),
        ("1", (255, 255, 255)),
        ("CMYK", None),
        ("I;16", (100, 100, 100)),
        ("RGBA", (255, 255, 255)),
        ("LA", (255, 255, 255)),
        ("P", None),
    ],
)
def test_mode_policy(mode, expected):
    if mode == "I;16":
        image = Image.fromarray(np.full((4, 4), 100 * 257, dtype=np.uint16))
    elif mode in ("RGBA", "LA"):
        image = Image.new(mode, (4, 4), (10,) * len(mode[:-1]) + (0,))
    elif mode == "1":
        image = Image.new("1", (4, 4), 1)
    else:
        image = Image.new(mode, (4, 4), 100 if mode == "L" else None)
    rgb = to_rgb(image)
    assert rgb.mode == "RGB" and rgb.size == (4, 4)
    if expected is not None:
        assert rgb.getpixel((0, 0)) == expected


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (6, 2), (0, 0, 0))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 clockwise on display
    image.info["exif"] = exif.tobytes()
    reloaded = Image.open(_save_jpeg(image, exif))
    assert to_rgb(reloaded).size == (2, 6)


def _save_jpeg(image, exif):
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    buffer.seek(0)
    return buffer


def test_tokens_do_not_depend_on_thread_count(tiny_model):
    image = random_image(64, 64, seed=3)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = vtcodec.compress(image, tokens=8, model=tiny_model)
        torch.set_num_threads(2)
        two = vtcodec.compress(image, tokens=8, model=tiny_model)
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(read_tokens(one, tiny_model).ids, read_tokens(two, tiny_model).ids)


def test_compress_and_decompress_are_thread_safe(tiny_model):
    from concurrent.futures import ThreadPoolExecutor

    images = [random_image(40 + i, 30, seed=i) for i in range(8)]
    expected = [vtcodec.compress(im, tokens=6, model=tiny_model) for im in images]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda im: vtcodec.compress(im, tokens=6, model=tiny_model), images))
        decoded = list(pool.map(lambda d: vtcodec.decompress(d, model=tiny_model), got))
    assert got == expected
    assert [d.size for d in decoded] == [im.size for im in images]
