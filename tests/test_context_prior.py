"""The digit-context prior: exact integer tables, lossless coding, and a real saving on correlated tokens."""

import numpy as np
import pytest

from vtcodec import container
from vtcodec.container import Coder
from vtcodec.context_prior import CONTEXT_FREQ_TOTAL, DigitContextPrior, neighbour_positions, token_digits
from vtcodec.entropy import decode_context, decode_stream, encode_context, encode_range, encode_stream
from vtcodec.errors import FormatError
from vtcodec.prior import TokenPrior, quantize_rows

LEVELS = (4, 3, 3)  # V = 36
SIDE, GROUPS = 2, 3  # 4 cells, K = 12


def correlated_tokens(rng, tiles):
    """Tokens whose digits follow their left / previous-group neighbours most of the time."""
    k, cells = GROUPS * SIDE * SIDE, SIDE * SIDE
    digits = np.zeros((tiles, k, len(LEVELS)), dtype=np.int64)
    for j in range(k):
        g, p = divmod(j, cells)
        fresh = np.stack([rng.integers(0, n, tiles) for n in LEVELS], axis=1)
        source = j - cells if g else (j - 1 if p % SIDE else None)
        if source is None:
            digits[:, j] = fresh
        else:
            keep = rng.random((tiles, 1)) < 0.7
            digits[:, j] = np.where(keep, digits[:, source], fresh)
    basis = np.cumprod([1, *LEVELS[:-1]])
    return (digits * basis).sum(axis=2)


@pytest.fixture(scope="module")
def priors():
    rng = np.random.default_rng(3)
    neighbours = neighbour_positions(SIDE, GROUPS, np.arange(SIDE * SIDE))
    train, held_out = correlated_tokens(rng, 3000), correlated_tokens(rng, 300)
    context = DigitContextPrior.fit(train, LEVELS, GROUPS, neighbours, held_out)
    per_position = TokenPrior.fit(train, int(np.prod(LEVELS)))
    return context, per_position


def test_neighbour_map_points_only_backwards():
    order = np.array([0, 3, 1, 2])  # a non-raster cell order
    neighbours = neighbour_positions(2, 3, order)
    assert neighbours.shape == (12, 3)
    rows, cols = np.nonzero(neighbours >= 0)
    assert (neighbours[rows, cols] < rows).all()
    assert neighbours[4:, 2].tolist() == list(range(8))  # previous group, same cell
    assert (neighbours[:4, 2] == -1).all()
    # Raster cell 1 (position 2 in this order) has raster cell 0 (position 0) on its left.
    assert neighbours[2, 0] == 0


def test_digits_are_the_mixed_radix_of_the_id():
    ids = np.arange(36)
    digits = token_digits(ids, LEVELS)
    assert (digits * np.array([1, 4, 12])).sum(axis=1).tolist() == ids.tolist()
    assert digits.max(axis=0).tolist() == [3, 2, 2]


def test_quantized_rows_are_exact():
    rng = np.random.default_rng(0)
    probabilities = rng.random((50, 7)) ** 8
    probabilities[0] = [1, 0, 0, 0, 0, 0, 0]
    rows = quantize_rows(probabilities, CONTEXT_FREQ_TOTAL)
    assert (rows >= 1).all() and (rows.sum(axis=1) == CONTEXT_FREQ_TOTAL).all()
    share = probabilities / probabilities.sum(axis=1, keepdims=True) * (CONTEXT_FREQ_TOTAL - 7)
    assert np.abs(rows - 1 - share).max() < 1.0


def test_tables_are_validated(priors):
    context, _ = priors
    bad = list(context.tables)
    bad[1] = bad[1].copy()
    bad[1][0, 0] += 1
    with pytest.raises(ValueError, match="sum"):
        DigitContextPrior(LEVELS, GROUPS, context.neighbours, tuple(bad))
    with pytest.raises(ValueError, match="shape"):
        DigitContextPrior(LEVELS, GROUPS, context.neighbours, (context.tables[0][:-1], *context.tables[1:]))


@pytest.mark.parametrize("counts", [[12, 12, 12], [0, 3, 12, 1, 7], [0, 0], [5]])
def test_round_trip(priors, counts):
    context, _ = priors
    ids = correlated_tokens(np.random.default_rng(5), len(counts))
    counts = np.array(counts)
    data = encode_context(ids, counts, context)
    out = decode_context(data, counts, context)
    assert out.shape == (len(counts), counts.max())
    for i, c in enumerate(counts):
        assert out[i, :c].tolist() == ids[i, :c].tolist()
        assert not out[i, c:].any()


def test_codes_correlated_tokens_shorter_than_per_position_tables(priors):
    context, per_position = priors
    ids = correlated_tokens(np.random.default_rng(6), 200)
    counts = np.full(200, 12)
    with_context = len(encode_context(ids, counts, context))
    without = len(encode_range(ids, counts, per_position))
    assert with_context < 0.8 * without
    # The coded size is the ideal code length to within a few bytes.
    assert abs(with_context - context.token_bits(ids).sum() / 8) < 8


def test_prefix_costs_add_up(priors):
    context, _ = priors
    ids = correlated_tokens(np.random.default_rng(7), 4)
    full = context.token_bits(ids)
    assert np.allclose(context.token_bits(ids[:, :5]), full[:, :5])


def test_encode_stream_prefers_the_context_coder_and_falls_back_to_raw(priors):
    context, per_position = priors
    ids = correlated_tokens(np.random.default_rng(8), 20)
    counts = np.full(20, 12)
    coder, data = encode_stream(ids, counts, per_position, context)
    assert coder == Coder.CONTEXT
    assert decode_stream(coder, data, counts, per_position, context)[:, :12].tolist() == ids.tolist()
    noise = np.random.default_rng(9).integers(0, 36, (20, 12))
    noise_coder, _ = encode_stream(noise, counts, per_position, context)
    assert noise_coder in (Coder.RAW, Coder.CONTEXT)


def test_context_file_needs_a_context_model(priors):
    context, per_position = priors
    ids = correlated_tokens(np.random.default_rng(10), 3)
    counts = np.full(3, 12)
    data = encode_context(ids, counts, context)
    with pytest.raises(FormatError, match="no context prior"):
        decode_stream(Coder.CONTEXT, data, counts, per_position, None)


def test_container_coder_ids():
    header = container.Header(b"\1" * 8, 100, 80, 128, np.array([5]), Coder.CONTEXT)
    data = container.pack(header, b"\7\7")
    assert data[4] & 0x05 == 0x05
    assert container.unpack(data)[0].coder == Coder.CONTEXT
    # Bit 2 without bit 0 names no coder.
    body = bytearray(data[:-4])
    body[4] = (body[4] & ~0x01) | 0x04
    import struct
    import zlib

    forged = bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))
    with pytest.raises(FormatError, match="unknown coder"):
        container.unpack(forged)


def test_model_file_carries_the_context_prior(tiny_model, tmp_path):
    from vtcodec.errors import InputError
    from vtcodec.zoo import parse_model, save_model, serialize_model

    assert tiny_model.context is not None
    path = tmp_path / "copy.safetensors"
    model_id = save_model(tiny_model.model, tiny_model.prior, path, tiny_model.context)
    loaded = parse_model(path.read_bytes())
    assert loaded.model_id == model_id
    for mine, theirs in zip(loaded.context.tables, tiny_model.context.tables, strict=True):
        assert np.array_equal(mine, theirs)
    # Without the tables the same network is another model, and files fall back to coder 1.
    plain = parse_model(serialize_model(tiny_model.model, tiny_model.prior))
    assert plain.context is None and plain.model_id != model_id
    # A table that does not fit the network is refused when loading.
    broken = DigitContextPrior.__new__(DigitContextPrior)
    object.__setattr__(broken, "tables", (tiny_model.context.tables[0][:-1], *tiny_model.context.tables[1:]))
    with pytest.raises(InputError, match="not a valid vtcodec model file"):
        parse_model(serialize_model(tiny_model.model, tiny_model.prior, broken))
