"""Matrix/TRC ICC v2 display profiles written from their primaries, for tests and the colour benchmark.

No profile files ship with this machine or with Pillow, so the tests make their own:
``display_p3()`` (P3 primaries, D65, the sRGB tone curve) and ``adobe_rgb()``
(Adobe RGB (1998) primaries, D65, gamma 563/256). littleCMS reads both.
"""

from __future__ import annotations

import struct

import numpy as np

D50 = np.array([0.9642, 1.0, 0.8249])
BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])


def _xyz(x: float, y: float) -> np.ndarray:
    return np.array([x / y, 1.0, (1 - x - y) / y])


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _xyz_tag(xyz: np.ndarray) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15(v) for v in xyz)


def _desc(text: str) -> bytes:
    ascii_text = text.encode("ascii") + b"\0"
    return b"desc\0\0\0\0" + struct.pack(">I", len(ascii_text)) + ascii_text + b"\0" * (4 + 4 + 2 + 1 + 67)


def _colorants(primaries: tuple[tuple[float, float], ...], white: tuple[float, float]) -> np.ndarray:
    """Columns: the XYZ of each primary, adapted from ``white`` to D50 with Bradford (as ICC asks)."""
    p = np.stack([_xyz(*xy) for xy in primaries], axis=1)
    w = _xyz(*white)
    m = p * np.linalg.solve(p, w)
    cone = BRADFORD @ w, BRADFORD @ D50
    adapt = np.linalg.inv(BRADFORD) @ np.diag(cone[1] / cone[0]) @ BRADFORD
    return adapt @ m


def matrix_profile(
    name: str, primaries: tuple[tuple[float, float], ...], white: tuple[float, float], curve: bytes
) -> bytes:
    """An ICC v2 RGB display profile with a matrix and one tone curve for all three channels."""
    m = _colorants(primaries, white)
    tags = [
        (b"desc", _desc(name)),
        (b"wtpt", _xyz_tag(D50)),
        (b"rXYZ", _xyz_tag(m[:, 0])),
        (b"gXYZ", _xyz_tag(m[:, 1])),
        (b"bXYZ", _xyz_tag(m[:, 2])),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
        (b"cprt", b"text\0\0\0\0" + b"No copyright, test profile\0"),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for sig, data in tags:
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data + b"\0" * (-len(data) % 4)
    size = offset + len(body)
    header = struct.pack(">I", size) + b"\0" * 4 + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
    header += b"\0" * 12 + b"acsp" + b"\0" * 24 + struct.pack(">I", 0) + b"".join(_s15(v) for v in D50)
    header += b"\0" * (128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + body


def _srgb_curve() -> bytes:
    g, a, b, c, d = 2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045
    return b"para\0\0\0\0" + struct.pack(">HH", 3, 0) + b"".join(_s15(v) for v in (g, a, b, c, d))


def _gamma_curve(gamma: float) -> bytes:
    return b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"


def display_p3() -> bytes:
    return matrix_profile(
        "Display P3 (vtcodec test)", ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060)), (0.3127, 0.3290), _srgb_curve()
    )


def adobe_rgb() -> bytes:
    return matrix_profile(
        "Adobe RGB (1998) (vtcodec test)",
        ((0.640, 0.330), (0.210, 0.710), (0.150, 0.060)),
        (0.3127, 0.3290),
        _gamma_curve(563 / 256),
    )
