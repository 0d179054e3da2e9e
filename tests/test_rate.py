"""Byte budgets, PSNR targets, RD allocation, truncation and the Pillow plugin (tiny model)."""

import io
import itertools

import numpy as np
import pytest
from PIL import Image, ImageFile

import vtcodec
from vtcodec import container, rate
from vtcodec.codec import fit_uniform_bytes, side_chunks, smallest_file_bytes, tokenize
from vtcodec.errors import FormatError, InputError
from vtcodec.imageio import prepare
from vtcodec.pipeline import Layout, read_tokens
from vtcodec.tile_grid import TileGrid

from .conftest import random_image


def psnr(a, b):
    mse = np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)
    return 10 * np.log10(255**2 / mse)


# Bytes a budget may leave unused: about one token's in version 1; in version 2 the first token of
# a new layer also brings the layer's framing (its end and length in the header, its CRC-16 and the
# finish of its range-coder segment), up to about 10 bytes at once.
SLACK = {1: 4, 2: 10}


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("size", [(1, 1), (32, 32), (75, 40), (130, 64), (40, 129)])
def test_byte_budget_is_never_exceeded(tiny_model, size, version):
    image = random_image(*size, seed=size[0])
    layout = Layout(version)
    chunks, flat = side_chunks(prepare(image))  # small images carry their tone; a 1x1 is flat
    floor = smallest_file_bytes(TileGrid(*size, 32), tiny_model, chunks, layout)
    full = len(vtcodec.compress(image, tokens=8, model=tiny_model, layout=layout))
    for budget in sorted({floor, floor + 3, (floor + full) // 2, full, full + 50}):
        result = vtcodec.encode(image, max_bytes=budget, model=tiny_model, layout=layout)
        assert len(result.data) <= budget
        if result.counts.min() < 8 and not flat:  # a flat image needs no tokens at all
            assert len(result.data) >= budget - SLACK[version]  # one more token would not have fitted
        assert vtcodec.decompress(result.data, model=tiny_model).size == size


def test_budget_below_the_floor_is_an_error(tiny_model):
    with pytest.raises(InputError, match="smallest possible file"):
        vtcodec.compress(random_image(64, 64), max_bytes=5, model=tiny_model)


def test_bpp_is_a_byte_budget(tiny_model):
    image = random_image(64, 64, seed=9)
    a = vtcodec.compress(image, bpp=0.5, model=tiny_model)
    b = vtcodec.compress(image, max_bytes=int(0.5 * 64 * 64 / 8), model=tiny_model)
    assert a == b


def test_rd_allocation_beats_uniform_at_equal_bytes(tiny_model):
    # One flat half and one busy half: the busy tiles deserve the tokens.
    rng = np.random.default_rng(0)
    pixels = np.full((64, 128, 3), 128, dtype=np.uint8)
    pixels[:, 64:] = rng.integers(0, 256, (64, 64, 3))
    uniform = vtcodec.compress(pixels, tokens=4, model=tiny_model)
    rd = vtcodec.encode(pixels, max_bytes=len(uniform), model=tiny_model)
    assert len(rd.data) <= len(uniform)
    uniform_psnr = psnr(pixels, vtcodec.decompress(uniform, model=tiny_model))
    rd_psnr = psnr(pixels, vtcodec.decompress(rd.data, model=tiny_model))
    assert rd_psnr >= uniform_psnr - 1e-6


def test_a_byte_budget_measures_only_around_the_uniform_count(tiny_model, monkeypatch):
    image = random_image(96, 64, seed=7)
    budget = len(vtcodec.compress(image, tokens=3, model=tiny_model))
    measured, real = [], rate.measure
    monkeypatch.setattr(rate, "measure", lambda *args: measured.append(args[5]) or real(*args))
    result = vtcodec.encode(image, max_bytes=budget, model=tiny_model)
    assert len(result.data) <= budget
    n = int(fit_uniform_bytes(tokenize(image, tiny_model), tiny_model, budget).counts[0])
    assert n >= 3 and len(measured) == 1
    assert measured[0].tolist() == rate.window_lengths(n, tiny_model.config.max_tokens).tolist()
    assert rate.window_lengths(40, 512).tolist() == [0, 10, 20, 30, 40, 60, 80, 120, 160, 512]
    assert rate.window_lengths(0, 512).tolist() == [0, 1, 512]


def test_psnr_and_quality_targets_measure_a_coarse_ladder_then_each_tile_around_its_count(tiny_model, monkeypatch):
    image = random_image(96, 64, seed=8)
    k = tiny_model.config.max_tokens
    best = psnr(image, vtcodec.decompress(vtcodec.compress(image, tokens=k, model=tiny_model), model=tiny_model))
    seen, real = [], rate.tile_sse
    monkeypatch.setattr(rate, "tile_sse", lambda *args: seen.append(np.asarray(args[3])) or real(*args))
    for target in ({"psnr": best - 0.5}, {"quality": 50.0}):
        seen.clear()
        vtcodec.encode(image, model=tiny_model, **target)
        assert seen[0].tolist() == rate.coarse_lengths(k).tolist()
        rounds = seen[1 : 1 + len(rate.AROUND)]
        assert [r.shape for r in rounds] == [(6, len(f)) for f in rate.AROUND]
        assert all(r.min() >= 1 and r.max() <= k for r in rounds)
    assert rate.coarse_lengths(512).tolist() == [0, 4, 16, 64, 128, 256, 512]
    assert rate.coarse_lengths(8).tolist() == [0, 4, 8]


def test_sse_between_measured_lengths_is_a_chord_or_a_power_law():
    bits = np.zeros((1, 11))
    chord = rate.RDTable(bits, np.array([0, 10]), np.array([[100.0, 1.0]]), 1)
    power = rate.RDTable(bits, np.array([0, 10]), np.array([[100.0, 1.0]]), 1, power_law=True)
    assert chord.sse_interpolated()[0, 5] == pytest.approx(50.5)
    assert power.sse_interpolated()[0, 5] == pytest.approx(np.exp(np.log(100) * (1 - np.log(6) / np.log(11))))
    assert power.sse_interpolated()[0, [0, 10]] == pytest.approx([100.0, 1.0])


def test_tile_sse_gives_each_tile_its_own_length(tiny_model, monkeypatch):
    from vtcodec.decoders import load_decoder
    from vtcodec.decoders.rendering import Decoder

    image = np.asarray(random_image(96, 64, seed=9))
    tokens = tokenize(image, tiny_model)
    decoder = load_decoder(tiny_model)
    k = tiny_model.config.max_tokens
    lengths = np.random.default_rng(0).integers(0, k + 1, (tokens.grid.count, 3))
    sse = rate.tile_sse(image, tokens, decoder, lengths)
    for col in range(3):
        decoded = decoder.render(tokens.ids, lengths[:, col], tokens.grid).astype(np.int64)
        assert sse[:, col].sum() == ((decoded - image) ** 2).sum()
    one_tile = np.asarray(random_image(20, 20, seed=10))  # one tile: a column of lengths is contiguous
    seen, render = [], Decoder.render_padded
    monkeypatch.setattr(Decoder, "render_padded", lambda self, ids, c, g: seen.append(c) or render(self, ids, c, g))
    rate.tile_sse(one_tile, tokenize(one_tile, tiny_model), decoder, np.array([[1, 3]]))
    assert len(seen) == 2 and all(c.flags.writeable for c in seen)  # torch warns on read-only arrays
    table = rate.measure(image, tokens, tiny_model, decoder, lengths=np.array([0, k]))
    counts = np.arange(tokens.grid.count) % (k + 1)
    refined = rate.refine(table, image, tokens, decoder, counts, factors=(0.5, 1.0))
    for tile, (xs, ys) in enumerate(zip(refined.tile_lengths(), refined.sse, strict=True)):
        wanted = {0, k} | {int(np.clip(round(f * counts[tile]), 1, k)) for f in (0.5, 1.0)}
        assert set(xs.tolist()) == wanted and np.all(np.diff(xs) >= 0)
        assert refined.sse_interpolated()[tile, xs] == pytest.approx(ys, rel=1e-9, abs=1e-2)


def test_psnr_target_met_or_reported(tiny_model):
    image = random_image(64, 64, seed=4)
    best = psnr(image, vtcodec.decompress(vtcodec.compress(image, tokens=8, model=tiny_model), model=tiny_model))
    reachable = best - 0.3
    result = vtcodec.encode(image, psnr=reachable, model=tiny_model)
    assert result.target_met
    assert psnr(image, vtcodec.decompress(result.data, model=tiny_model)) >= reachable
    assert result.psnr == pytest.approx(psnr(image, vtcodec.decompress(result.data, model=tiny_model)))
    missed = vtcodec.encode(image, psnr=99.0, model=tiny_model)
    assert not missed.target_met
    assert missed.counts.tolist() == [8] * 4


@pytest.mark.parametrize(
    "kwargs", [{"tokens": 3, "max_bytes": 100}, {"bpp": 0.1, "psnr": 30}, {"tokens": 1, "psnr": 3}]
)
def test_targets_cannot_be_combined(tiny_model, kwargs):
    with pytest.raises(InputError, match="only one"):
        vtcodec.compress(random_image(8, 8), model=tiny_model, **kwargs)


def test_truncate_to_tokens_equals_a_shorter_encode(tiny_model):
    image = random_image(90, 70, seed=5)
    full = vtcodec.compress(image, tokens=8, model=tiny_model)
    for n in range(9):
        assert vtcodec.truncate(full, tokens=n, model=tiny_model) == vtcodec.compress(image, tokens=n, model=tiny_model)


def test_truncate_to_bytes_keeps_token_prefixes(tiny_model):
    image = random_image(90, 70, seed=6)
    full = vtcodec.compress(image, tokens=8, model=tiny_model)
    original = read_tokens(full, tiny_model)
    floor = smallest_file_bytes(TileGrid(90, 70, 32), tiny_model)
    for budget in range(floor, len(full) + 1, 3):
        small = vtcodec.truncate(full, max_bytes=budget, model=tiny_model)
        assert len(small) <= budget
        stream = read_tokens(small, tiny_model)
        for row, count, orig in zip(stream.ids, stream.header.token_counts, original.ids, strict=True):
            assert row[:count].tolist() == orig[:count].tolist()


def test_pillow_plugin_round_trip(tiny_model, tiny_model_path, tmp_path, monkeypatch):
    from vtcodec import zoo

    monkeypatch.setattr(zoo, "_search_paths", [])  # registration stays local to this test
    vtcodec.register_model_path(tiny_model_path)
    image = random_image(50, 30, seed=7)
    path = tmp_path / "x.vtk"
    image.save(path, tokens=6, model=tiny_model_path)
    opened = Image.open(path)
    assert opened.format == "VTK" and opened.size == (50, 30) and opened.mode == "RGB"
    expected = vtcodec.decompress(path.read_bytes(), model=tiny_model)
    assert np.array_equal(np.asarray(opened), np.asarray(expected))
    buffer = io.BytesIO()
    image.save(buffer, format="VTK", bytes=120, model=tiny_model_path)
    assert len(buffer.getvalue()) <= 120
    assert Image.MIME["VTK"] == "image/x-vtk"
    assert Image.registered_extensions()[".vtk"] == "VTK"
    # alpha and metadata through the plugin
    cut = image.convert("RGBA")
    cut.putalpha(Image.fromarray((np.arange(1500).reshape(30, 50) % 256).astype(np.uint8), "L"))
    cut.info["xmp"] = b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>"
    cut.save(path, tokens=4, model=tiny_model_path, metadata="xmp")
    opened = Image.open(path)
    assert opened.mode == "RGBA" and opened.info["xmp"] == cut.info["xmp"]
    assert np.abs(np.asarray(opened)[..., 3].astype(int) - np.asarray(cut)[..., 3]).max() <= 2
    # format version and layers through the plugin; a cut file opens only as Pillow allows truncated images
    image.save(path, tokens=6, model=tiny_model_path, format_version=1)
    assert path.read_bytes()[3] == 1
    image.save(path, tokens=6, model=tiny_model_path, layers=(2, 4))
    data = path.read_bytes()
    path.write_bytes(data[: container.parse(data).layer_offsets[1] + 1])
    with pytest.raises(FormatError, match="truncated"):
        Image.open(path)
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    opened = Image.open(path)
    assert opened.info["partial_layers"] == (2, 3) and opened.size == (50, 30)
    assert np.array_equal(np.asarray(opened), np.asarray(vtcodec.decompress(data, 4, model=tiny_model)))


def test_tokenize_is_the_prefix_source(tiny_model):
    image = random_image(40, 40, seed=8)
    ids = tokenize(image, tiny_model).ids
    stream = read_tokens(vtcodec.compress(image, tokens=[1, 2, 3, 4], model=tiny_model), tiny_model)
    for i, count in enumerate([1, 2, 3, 4]):
        assert stream.ids[i, :count].tolist() == ids[i, :count].tolist()


def test_largest_passing_bisects_integers():
    from vtcodec.rate import largest_passing

    calls = []

    def under(limit):
        def ok(n):
            calls.append(n)
            return n <= limit

        return ok

    assert largest_passing(0, 100, under(37)) == 37 and len(calls) <= 9
    assert largest_passing(0, 100, under(100)) == 100
    assert largest_passing(0, 100, under(0)) == 0
    assert largest_passing(5, 100, under(3)) is None


def test_quality_maps_monotonically_to_the_rd_slope():
    from vtcodec.codec import QUALITY_SLOPES, slope_for_quality

    slopes = [slope_for_quality(q) for q in range(0, 101)]
    assert all(a > b for a, b in itertools.pairwise(slopes))
    assert slopes[0] == pytest.approx(QUALITY_SLOPES[0][1]) and slopes[-1] == pytest.approx(QUALITY_SLOPES[-1][1])
    for bad in (-1, 100.5):
        with pytest.raises(vtcodec.UsageError, match="quality must be 0"):
            slope_for_quality(bad)


def test_a_higher_quality_never_makes_a_smaller_file(tiny_model):
    from .conftest import ROOT

    with Image.open(ROOT / "samples" / "parrots.png") as photo:
        image = photo.convert("RGB").crop((100, 60, 260, 160))  # the shipped model: a decoder that improves
    results = [vtcodec.encode(image, quality=q) for q in (0, 40, 80, 100)]
    sizes = [len(r.data) for r in results]
    assert sizes == sorted(sizes)
    counts = [r.counts.sum() for r in results]
    assert counts == sorted(counts) and counts[-1] > counts[0]
    with pytest.raises(vtcodec.UsageError, match="use only one of"):
        vtcodec.encode(image, 4, quality=50, model=tiny_model)
