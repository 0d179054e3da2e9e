"""The shipped default model: loads offline, encodes the samples, and has the prefix property."""

import numpy as np
import pytest

import vtcodec
from vtcodec.codec import render
from vtcodec.imageio import open_image
from vtcodec.pipeline import read_tokens
from vtcodec.zoo import default_weights

from .conftest import SHARED


def psnr(a, b):
    mse = np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)
    return 10 * np.log10(255**2 / mse)


def test_default_weights_are_small_safetensors():
    assert default_weights().stat().st_size <= 30 * 1024 * 1024
    assert default_weights().read_bytes()[8:9] == b"{"  # a safetensors JSON header, no pickle


def test_prefix_property_on_samples(sample_paths):
    model = vtcodec.load_model()
    steps = [1, 4, 16, 64, model.config.max_tokens]
    scores = np.zeros(len(steps))
    for path in sample_paths:
        image = open_image(path)
        stream = read_tokens(vtcodec.compress(image, tokens=steps[-1]))
        for i, n in enumerate(steps):
            scores[i] += psnr(image, render(stream, tokens=n)) / len(sample_paths)
    assert np.all(np.diff(scores) > 0), scores


def test_default_api_round_trip(sample_paths):
    image = open_image(sample_paths[0])
    data = vtcodec.compress(image)
    out = vtcodec.decompress(data)
    assert out.size == image.size
    assert read_tokens(data).header.token_counts.tolist() == [vtcodec.DEFAULT_TOKENS] * 6
    assert psnr(image, out) > 15


@pytest.mark.skipif(not (SHARED / "kodak").exists(), reason="../shared/data/kodak is not present")
def test_kodak_image_round_trip():
    image = open_image(SHARED / "kodak" / "kodim01.png")
    out = vtcodec.decompress(vtcodec.compress(image, tokens=32))
    assert out.size == (768, 512)
