import numpy as np
import pytest

from vtcodec.container import Coder
from vtcodec.entropy import decode_stream, encode_range, encode_stream, pack_raw, stream_order, unpack_raw
from vtcodec.errors import FormatError
from vtcodec.prior import FREQ_TOTAL, TokenPrior, quantize_counts


@pytest.fixture(scope="module")
def prior():
    rng = np.random.default_rng(1)
    tokens = rng.zipf(1.3, (500, 16)) % 100
    return TokenPrior.fit(tokens, 100)


def random_ids(rng, tiles, k=16, v=100):
    return rng.zipf(1.3, (tiles, k)) % v


def test_quantized_tables_are_exact_integers():
    rng = np.random.default_rng(0)
    counts = rng.random((7, 33)) * 1000
    counts[0, :5] = 0
    freqs = quantize_counts(counts)
    assert freqs.dtype == np.int64
    assert (freqs >= 1).all()
    assert (freqs.sum(axis=1) == FREQ_TOTAL).all()
    share = counts / counts.sum(axis=1, keepdims=True) * (FREQ_TOTAL - 33)
    assert np.abs(freqs - 1 - share).max() < 1.0


@pytest.mark.parametrize("counts", [[16, 16, 16], [0, 3, 16, 1], [0, 0], [5]])
def test_range_round_trip(prior, counts):
    rng = np.random.default_rng(2)
    counts = np.array(counts)
    ids = random_ids(rng, len(counts))
    coder, data = encode_stream(ids, counts, prior)
    out = decode_stream(coder, data, counts, prior)
    for i, c in enumerate(counts):
        assert out[i, :c].tolist() == ids[i, :c].tolist()
        assert not out[i, c:].any()


def test_raw_round_trip_and_padding_checks():
    rng = np.random.default_rng(3)
    tokens = rng.integers(0, 100, 37)
    data = pack_raw(tokens, 100)
    assert len(data) == -(-37 * 7 // 8)
    assert unpack_raw(data, 37, 100).tolist() == tokens.tolist()
    with pytest.raises(FormatError):
        unpack_raw(data[:-1], 37, 100)
    with pytest.raises(FormatError):
        unpack_raw(data[:-1] + bytes([data[-1] | 1]), 37, 100)  # padding bit set


def test_picks_the_smaller_coder(prior):
    rng = np.random.default_rng(4)
    likely = np.zeros((4, 16), dtype=np.int64) + np.argmax(prior.freqs, axis=1)
    coder, _ = encode_stream(likely, np.full(4, 16), prior)
    assert coder == Coder.RANGE
    unlikely = np.zeros((4, 16), dtype=np.int64) + np.argmin(prior.freqs, axis=1)
    coder, data = encode_stream(unlikely, np.full(4, 16), prior)
    assert coder == Coder.RAW
    assert len(data) < len(encode_range(unlikely, np.full(4, 16), prior))
    del rng


def test_stream_order_is_position_major():
    tiles, positions = stream_order(np.array([2, 0, 3]))
    assert list(zip(tiles.tolist(), positions.tolist(), strict=True)) == [(0, 0), (2, 0), (0, 1), (2, 1), (2, 2)]


def test_range_coder_cost_matches_ideal_code_length(prior):
    rng = np.random.default_rng(5)
    tiles = 200
    ids = np.stack([rng.choice(100, size=tiles, p=prior.freqs[j] / FREQ_TOTAL) for j in range(16)], axis=1)
    counts = np.full(tiles, 16)
    tiles_idx, positions = stream_order(counts)
    ideal = prior.bits(ids[tiles_idx, positions], positions) / 8
    data = encode_range(ids, counts, prior)
    assert ideal <= len(data) <= ideal * 1.01 + 8


def test_fit_best_picks_the_smoothing_with_the_shortest_held_out_code():
    rng = np.random.default_rng(6)
    train = rng.zipf(1.5, (300, 8)) % 50
    held_out = rng.zipf(1.5, (100, 8)) % 50
    positions = np.broadcast_to(np.arange(8), held_out.shape)
    prior, backoff = TokenPrior.fit_best(train, held_out, 50, backoffs=(1, 30, 1000))
    costs = {b: TokenPrior.fit(train, 50, b).bits(held_out, positions) for b in (1, 30, 1000)}
    assert costs[backoff] == min(costs.values())
    assert prior.bits(held_out, positions) == costs[backoff]
