"""Format version 2: layers, cut files, cutting without a model (format-spec/vtk-v2.md)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vtcodec import container, entropy
from vtcodec.container import Coder, Header, cut, cut_to_fit, layer_ends, pack_layers, parse
from vtcodec.errors import FormatError, UsageError
from vtcodec.pipeline import Layout, TokenImage, pack_tokens, read_tokens
from vtcodec.tile_grid import TileGrid

from .conftest import SHARED

MODEL_ID = bytes(range(8))


def layered(counts, layers, payloads, width=300, height=200, chunks=()):
    header = Header(MODEL_ID, width, height, 128, np.asarray(counts), Coder.CONTEXT, 2, chunks, tuple(layers))
    return pack_layers(header, payloads)


def test_layer_ends_follow_the_ladder_up_to_the_longest_count():
    assert layer_ends(np.array([64, 3]), (4, 8, 16, 32, 64, 128)) == (4, 8, 16, 32, 64)
    assert layer_ends(np.array([20, 3]), (4, 8, 16, 32)) == (4, 8, 16, 20)
    assert layer_ends(np.array([2]), (4, 8)) == (2,)
    assert layer_ends(np.array([0, 0]), (4, 8)) == ()


def test_a_layered_file_round_trips_and_lists_where_each_layer_ends():
    data = layered([16] * 6, (4, 8, 16), [b"a", b"bc", b"def"])
    parsed = parse(data)
    assert parsed.complete and parsed.payloads == (b"a", b"bc", b"def")
    assert parsed.header.version == 2 and parsed.header.layers == (4, 8, 16)
    assert parsed.layer_offsets[-1] == len(data)
    assert [b - a for a, b in zip(parsed.layer_offsets, parsed.layer_offsets[1:], strict=False)] == [4, 5]


def test_every_cut_after_the_header_gives_the_complete_layers_and_inside_it_an_error():
    data = layered([16] * 6, (4, 8, 16), [b"a", b"bc", b"def"])
    full = parse(data)
    header_end = full.layer_offsets[0] - 3  # the first layer: 1 byte and its check
    for offset in range(len(data) + 1):
        if offset < header_end:
            with pytest.raises(FormatError, match=r"truncated|magic"):
                parse(data[:offset], partial=True)
            continue
        parsed = parse(data[:offset], partial=True)
        held = sum(end <= offset for end in full.layer_offsets)
        assert parsed.payloads == full.payloads[:held]
        assert parsed.complete == (offset == len(data))
        if offset < len(data):
            with pytest.raises(FormatError, match="truncated"):
                parse(data[:offset])


def test_a_flipped_bit_in_a_complete_layer_or_the_header_is_corrupt_never_a_cut():
    data = layered([16] * 6, (4, 8, 16), [b"a", b"bc", b"def"])
    for i in range(len(data)):
        for bit in range(8):
            damaged = bytearray(data)
            damaged[i] ^= 1 << bit
            with pytest.raises(FormatError):
                parse(bytes(damaged), partial=True)


def test_bytes_after_the_last_layer_are_corrupt():
    data = layered([4] * 6, (4,), [b"abc"])
    with pytest.raises(FormatError, match="past its end"):
        parse(data + b"\0", partial=True)


@pytest.mark.parametrize("layers", [(4, 4, 16), (0, 16), (4, 8), (4, 8, 16, 20)])
def test_bad_layer_ends_are_refused(layers):
    header = Header(MODEL_ID, 300, 200, 128, np.full(6, 16), Coder.CONTEXT, 2, (), layers)
    with pytest.raises(ValueError):
        pack_layers(header, [b""] * len(layers))


def test_cut_rewrites_the_header_and_keeps_the_layers_bytes():
    data = layered([16, 16, 3, 16, 0, 16], (4, 8, 16), [b"a", b"bc", b"def"])
    parsed = parse(data)
    two = parse(cut(parsed, 2))
    assert two.complete and two.header.layers == (4, 8) and two.payloads == (b"a", b"bc")
    assert two.header.token_counts.tolist() == [8, 8, 3, 8, 0, 8]
    assert parse(cut(parsed, 0)).header.token_counts.tolist() == [0] * 6
    assert cut_to_fit(parsed, tokens=10) == cut(parsed, 2)
    assert cut_to_fit(parsed, max_bytes=len(cut(parsed, 1))) == cut(parsed, 1)
    with pytest.raises(UsageError):
        cut_to_fit(parse(container.pack(Header(MODEL_ID, 300, 200, 128, np.full(6, 4), Coder.RAW), b"x")), 2)


def _random_model_free_stream(rng, tiles, longest):
    counts = rng.integers(0, longest + 1, tiles)
    ids = rng.integers(0, 1600, (tiles, longest))
    return counts, ids


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    ladder=st.lists(st.integers(1, 40), min_size=1, max_size=8, unique=True),
    fraction=st.floats(0, 1),
)
def test_any_ladder_and_any_cut_decode_to_a_prefix_of_the_full_tokens(tiny_model, seed, ladder, fraction):
    rng = np.random.default_rng(seed)
    grid = TileGrid(300, 200, tiny_model.config.tile_size)
    k = tiny_model.config.max_tokens
    counts = rng.integers(0, k + 1, grid.count)
    ids = rng.integers(0, tiny_model.codebook_size, (grid.count, k))
    data = pack_tokens(TokenImage(grid, ids), counts, tiny_model, layout=Layout(2, tuple(ladder)))
    full = read_tokens(data, tiny_model)
    for i, c in enumerate(counts):
        assert full.ids[i, :c].tolist() == ids[i, :c].tolist()
    offset = int(fraction * len(data))
    try:
        part = read_tokens(data[:offset], tiny_model)
    except FormatError as exc:
        assert "truncated" in str(exc) or "magic" in str(exc)
        return
    held = part.header.token_counts
    assert (held == np.minimum(counts, held.max(initial=0))).all()
    width = part.ids.shape[1]
    assert (part.ids == full.ids[:, :width] * (np.arange(width) < held[:, None])).all()


def test_version_1_and_2_files_hold_the_same_tokens(tiny_model):
    rng = np.random.default_rng(3)
    grid = TileGrid(300, 200, tiny_model.config.tile_size)
    ids = rng.integers(0, tiny_model.codebook_size, (grid.count, tiny_model.config.max_tokens))
    counts = rng.integers(0, tiny_model.config.max_tokens + 1, grid.count)
    one = read_tokens(pack_tokens(TokenImage(grid, ids), counts, tiny_model, layout=Layout(1)), tiny_model)
    two = read_tokens(pack_tokens(TokenImage(grid, ids), counts, tiny_model), tiny_model)
    assert one.header.version == 1 and two.header.version == 2
    assert (one.ids == two.ids).all()


def test_a_layer_that_is_not_the_canonical_coding_of_its_tokens_is_corrupt(tiny_model):
    grid = TileGrid(300, 200, tiny_model.config.tile_size)
    ids = np.zeros((grid.count, tiny_model.config.max_tokens), dtype=np.int64)
    counts = np.full(grid.count, tiny_model.config.max_tokens)
    data = pack_tokens(TokenImage(grid, ids), counts, tiny_model)
    parsed = parse(data)
    longer = [*parsed.payloads[:-1], parsed.payloads[-1] + b"\x00\x00\x00\x01"]
    forged = pack_layers(parsed.header, longer)
    with pytest.raises(FormatError, match="corrupt"):
        read_tokens(forged, tiny_model)


def test_layout_refuses_bad_values():
    with pytest.raises(UsageError):
        Layout(3)
    with pytest.raises(UsageError):
        Layout(2, (0, 4))
    assert entropy.layer_ranges(()) == []


def test_decode_progressive_gives_a_picture_per_layer_as_the_bytes_arrive(
    tiny_model, tiny_model_path, cli_run, tmp_path
):
    import io

    import vtcodec

    from .conftest import random_image

    image = random_image(70, 50, seed=5)
    data = vtcodec.compress(image, tokens=8, model=tiny_model, layout=Layout(2, (1, 2, 5)))
    pictures = list(vtcodec.decode_progressive(io.BytesIO(data), model=tiny_model, chunk_size=7))
    assert len(pictures) == 4  # layers ending at 1, 2, 5 and 8 tokens
    assert np.array_equal(np.asarray(pictures[-1]), np.asarray(vtcodec.decompress(data, model=tiny_model)))
    assert np.array_equal(np.asarray(pictures[1]), np.asarray(vtcodec.decompress(data, 2, model=tiny_model)))
    cut_short = list(vtcodec.decode_progressive(data[: parse(data).layer_offsets[1] + 3], model=tiny_model))
    assert len(cut_short) == 2
    one = vtcodec.compress(image, tokens=8, model=tiny_model, layout=Layout(1))
    assert len(list(vtcodec.decode_progressive(one, model=tiny_model))) == 1
    vtk = tmp_path / "p.vtk"
    vtk.write_bytes(data)
    steps = tmp_path / "steps"
    code, _, err = cli_run(
        "decode", vtk, "-o", tmp_path / "p.png", "--progressive-out", steps, "--model", tiny_model_path
    )
    assert code == 0, err
    assert sorted(p.name for p in steps.iterdir()) == [f"p.layer-{k}.png" for k in (1, 2, 3, 4)]


@pytest.mark.skipif(not (SHARED / "kodak").is_dir(), reason="the shared Kodak images are not here")
def test_kodak_files_cut_at_random_offsets_give_their_complete_layers():
    import vtcodec
    from vtcodec.imageio import open_image

    model = vtcodec.load_model()
    rng = np.random.default_rng(42)
    for name in ("kodim01.png", "kodim23.png"):
        tokens = vtcodec.tokenize(open_image(SHARED / "kodak" / name), model)
        counts = rng.integers(0, 97, tokens.grid.count)  # an RD-like mix of counts
        data = pack_tokens(tokens, counts, model)
        full = read_tokens(data, model)
        offsets = parse(data).layer_offsets
        for offset in rng.integers(offsets[0] - 10, len(data), 25):
            try:
                part = read_tokens(data[:offset], model)
            except FormatError as exc:
                assert offset < offsets[0] and "truncated" in str(exc)
                continue
            held = sum(end <= offset for end in offsets)
            assert part.cut is not None and part.cut.layers == held
            limit = part.cut.tokens
            assert (part.header.token_counts == np.minimum(counts, limit)).all()
            assert (part.ids == full.ids[:, :limit]).all()
