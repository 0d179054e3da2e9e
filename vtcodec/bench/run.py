"""One bench run: every image through every codec at vtcodec's points, then the reports (``report``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vtcodec.bench.codecs import (
    CLASSIC_SWEEP,
    SCALES,
    Codec,
    ScaledCodec,
    VtcodecCodec,
    classic_codecs,
    largest_fitting,
)
from vtcodec.bench.report import Metrics, Row, write_outputs
from vtcodec.errors import InputError
from vtcodec.fileio import make_dir
from vtcodec.imageio import open_image
from vtcodec.metrics import psnr_rgb
from vtcodec.zoo import LoadedModel

TOKEN_LADDER = (8, 16, 32, 64, 96, 128, 192, 256, 384, 512, 768, 1024)


def _measure(c: Codec, pixels: np.ndarray, data: bytes, metrics: Metrics) -> dict[str, float]:
    decoded = c.decode(data, (pixels.shape[1], pixels.shape[0]))
    return metrics(pixels, decoded)


def run_bench(
    images: Sequence[Path],
    out_dir: Path,
    model: LoadedModel,
    codecs: Sequence[str] = ("vtcodec", "jpeg", "webp", "avif"),
    token_points: Sequence[int] = (16, 32, 64, 128, 256),
    per_image: bool = False,
    crop_image: int = 0,
    quiet: bool = False,
    decoders: Sequence[str | Path | None] = (None,),
    metric_names: Sequence[str] | None = None,
) -> dict:
    """Measure, then write results.json, results.csv, bd-rate.md, the plots and a side-by-side crop.

    Each of ``decoders`` decodes the same vtcodec files (None: the model's default decoder);
    the first is reported as ``vtcodec``, the others as ``vtcodec-NAME``. ``metric_names``
    chooses metrics of ``vtcodec.metrics`` (default: every one whose package is installed).
    """
    start = time.perf_counter()
    metrics = Metrics(metric_names)
    make_dir(out_dir)
    variants = [VtcodecCodec(model, d, first=i == 0) for i, d in enumerate(decoders or (None,))]
    if len({v.name for v in variants}) < len(variants):
        raise InputError("each decoder may be benched once")
    ours = variants[0]
    classic = {name: c for name, c in classic_codecs().items() if name in codecs}
    rows: list[Row] = []
    sweeps: list[Row] = []  # classic codecs over their own quality range: their curves and floors
    crops: dict[str, np.ndarray] = {}
    for index, path in enumerate(tqdm(images, desc="bench", unit="img", disable=quiet)):
        pixels = np.asarray(open_image(path), dtype=np.uint8)
        name = path.name
        pixel_count = pixels.shape[0] * pixels.shape[1]

        def row(
            codec_name: str, point: int, setting: str, data: bytes | None, scores=None, name=name, area=pixel_count
        ) -> Row:
            if data is None:
                return Row(name, codec_name, point, setting, None, None, None)
            return Row(name, codec_name, point, setting, len(data), 8 * len(data) / area, scores)

        for n in token_points:
            data = ours.encode(pixels, n)  # one file, decoded by every decoder: equal bytes by construction
            for variant in variants:
                rows.append(row(variant.name, n, f"tokens={n}", data, _measure(variant, pixels, data, metrics)))
            for cname, c in classic.items():
                found = largest_fitting(lambda q, c=c, p=pixels: c.encode(p, q), c.q_min, c.q_max, len(data))
                scores = None if found is None else _measure(c, pixels, found[1], metrics)
                rows.append(row(cname, n, f"q={found[0]}" if found else "unreachable", found and found[1], scores))
                best = None
                for scale in SCALES:  # from mild to strong; PSNR rises, then falls: stop at the fall
                    scaled = ScaledCodec(c, scale)
                    hit = largest_fitting(lambda q, s=scaled, p=pixels: s.encode(p, q), c.q_min, c.q_max, len(data))
                    if hit is None:
                        continue
                    decoded = scaled.decode(hit[1], (pixels.shape[1], pixels.shape[0]))
                    score = psnr_rgb(pixels, decoded)
                    if best is not None and score <= best[0]:
                        break
                    best = (score, scaled, hit)
                if best is None:
                    rows.append(row(f"{cname}-down", n, "unreachable", None))
                else:
                    _, scaled, (q, blob) = best
                    setting = f"q={q},scale=1/{round(1 / scaled.scale)}"
                    rows.append(row(f"{cname}-down", n, setting, blob, _measure(scaled, pixels, blob, metrics)))
            if index == crop_image and n == token_points[len(token_points) // 2]:
                crops = _crop_candidates(pixels, variants, classic, data)
        for cname, c in classic.items():
            for q in CLASSIC_SWEEP:
                q = min(max(q, c.q_min), c.q_max)
                data = c.encode(pixels, q)
                sweeps.append(row(f"{cname}-sweep", -1, f"q={q}", data, _measure(c, pixels, data, metrics)))
    seconds = time.perf_counter() - start
    try:
        return write_outputs(out_dir, rows, sweeps, codecs, token_points, metrics, per_image, crops, seconds, variants)
    except OSError as exc:  # a full disk, a folder that went away
        raise InputError(f"{out_dir}: cannot write the results ({exc.strerror or exc})") from None


def _crop_candidates(
    pixels: np.ndarray, variants: list[VtcodecCodec], classic: dict, data: bytes
) -> dict[str, np.ndarray]:
    """Decoded images at equal bytes for the side-by-side figure (best scale when the codec needs one)."""
    size = (pixels.shape[1], pixels.shape[0])
    budget = len(data)
    out = {"original": pixels, **{f"{v.name} ({budget} B)": v.decode(data, size) for v in variants}}
    for cname, c in classic.items():
        candidates = [c, *(ScaledCodec(c, s) for s in SCALES)]
        best = None
        for candidate in candidates:
            hit = largest_fitting(lambda q, k=candidate: k.encode(pixels, q), c.q_min, c.q_max, budget)
            if hit is not None:
                decoded = candidate.decode(hit[1], size)
                score = psnr_rgb(pixels, decoded)
                if best is None or score > best[0]:
                    label = cname if candidate is c else f"{cname} 1/{round(1 / candidate.scale)}"
                    best = (score, f"{label} ({len(hit[1])} B)", decoded)
        if best is not None:
            out[best[1]] = best[2]
    return out
