import struct
import zlib

import numpy as np
import pytest

from vtcodec.container import Coder, Header, pack, unpack, write_varint
from vtcodec.errors import FormatError

MODEL_ID = bytes(range(8))


def make(counts, width=300, height=200, tile=128, coder=Coder.RANGE, payload=b"\x01\x02\x03"):
    header = Header(MODEL_ID, width, height, tile, np.asarray(counts), coder)
    return pack(header, payload)


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 16383, 16384, 2**40])
def test_varint_round_trip(value):
    from vtcodec.container import _Reader

    data = write_varint(value)
    reader = _Reader(data, len(data))
    assert reader.varint(2**64) == value
    assert reader.pos == len(data)


def test_pack_unpack_uniform_and_varied():
    for counts in ([64] * 6, [0, 1, 2, 64, 255, 256]):
        data = make(counts)
        header, payload = unpack(data)
        assert payload == b"\x01\x02\x03"
        assert (header.width, header.height, header.tile_size) == (300, 200, 128)
        assert header.grid == (3, 2)
        assert header.token_counts.tolist() == counts
        assert header.model_id == MODEL_ID
        assert header.coder == Coder.RANGE
        assert header.version == 1


def test_one_tile_overhead_is_22_bytes():
    data = make([64], width=100, height=80, payload=b"")
    assert len(data) == 22


def test_every_truncation_is_rejected():
    data = make([5, 6, 7, 8, 9, 10])
    for cut in range(len(data)):
        with pytest.raises(FormatError):
            unpack(data[:cut])


def test_every_bit_flip_is_rejected():
    data = make([5, 6, 7, 8, 9, 10])
    for i in range(len(data)):
        for bit in range(8):
            corrupt = bytearray(data)
            corrupt[i] ^= 1 << bit
            with pytest.raises(FormatError):
                unpack(bytes(corrupt))


def test_extended_file_is_rejected():
    data = make([3] * 6)
    with pytest.raises(FormatError, match=f"corrupt file: 1 byte past its end \\({len(data)} bytes\\)"):
        unpack(data + b"\0")


def test_truncated_file_says_how_much_is_there():
    data = make([3] * 6)
    with pytest.raises(FormatError, match=f"truncated: {len(data) - 5} of {len(data)} bytes"):
        unpack(data[:-5])


def _refresh_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def test_unknown_version_is_rejected_before_anything_else():
    data = bytearray(make([3] * 6))
    data[3] = 9
    with pytest.raises(FormatError, match="version 9"):
        unpack(_refresh_crc(bytes(data[:-4])))


def test_unknown_flags_are_rejected():
    data = bytearray(make([3] * 6))
    data[4] |= 0x80
    with pytest.raises(FormatError, match="flags"):
        unpack(_refresh_crc(bytes(data[:-4])))


def test_not_a_vtk_file():
    with pytest.raises(FormatError, match="magic"):
        unpack(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)


def test_counts_above_model_limit_are_rejected():
    with pytest.raises(FormatError):
        unpack(make([300] * 6), max_tokens=256)


def test_declared_size_is_checked_against_the_pixel_limit(monkeypatch):
    import vtcodec

    big = make([1] * 64, width=1 << 20, height=1 << 20, tile=131072)
    with pytest.raises(FormatError, match="refusing to decode: 1048576x1048576 is more than 67108864 pixels"):
        unpack(big)
    monkeypatch.setattr(vtcodec, "MAX_PIXELS", None)
    header, _ = unpack(big)
    assert header.width == 1 << 20
    monkeypatch.setattr(vtcodec, "MAX_PIXELS", 1000)
    with pytest.raises(FormatError, match="more than 1000 pixels"):
        unpack(make([1] * 6, width=48, height=32, tile=16))
