"""Rate-quality benchmark of vtcodec against JPEG, WebP and AVIF at equal bytes.

Every codec sits behind one interface (:class:`Codec`: ``encode(pixels, setting)
-> bytes`` and ``decode(bytes) -> pixels``), and all sizes are whole-file bytes
counted in memory. For each image and each vtcodec file, every classic codec gets
the quality found by bisection whose file is the largest one that is not larger;
where even its lowest quality is larger, the point is marked unreachable (never
extrapolated). "Downscale + codec + Lanczos upscale" variants try several scales
and keep the best PSNR at that size; they pay 4 bytes for the original size.
"""

from vtcodec.bench.codecs import (
    CLASSIC_SWEEP,
    SCALES,
    SIZE_HEADER,
    Codec,
    PillowCodec,
    ScaledCodec,
    VtcodecCodec,
    classic_codecs,
    largest_fitting,
)
from vtcodec.bench.report import METRIC_LABELS, Metrics, Row, bd_rate
from vtcodec.bench.run import TOKEN_LADDER, run_bench

__all__ = [
    "CLASSIC_SWEEP",
    "METRIC_LABELS",
    "SCALES",
    "SIZE_HEADER",
    "TOKEN_LADDER",
    "Codec",
    "Metrics",
    "PillowCodec",
    "Row",
    "ScaledCodec",
    "VtcodecCodec",
    "bd_rate",
    "classic_codecs",
    "largest_fitting",
    "run_bench",
]
