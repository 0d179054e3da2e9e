"""Rate-quality benchmark of vtcodec against JPEG, WebP and AVIF at equal bytes.

Every codec sits behind one interface (:class:`Codec`: ``encode(pixels, setting)
-> bytes`` and ``decode(bytes) -> pixels``), and all sizes are whole-file bytes
counted in memory. For each image and each vtcodec file, every classic codec gets
the quality found by bisection whose file is the largest one that is not larger;
where even its lowest quality is larger, the point is marked unreachable (never
extrapolated). "Downscale + codec + Lanczos upscale" variants try several scales
and keep the best PSNR at that size; they pay 4 bytes for the original size.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from vtcodec import codec
from vtcodec.errors import InputError
from vtcodec.imageio import open_image
from vtcodec.metrics import METRICS, missing, psnr_rgb
from vtcodec.rate import largest_passing
from vtcodec.zoo import LoadedModel

SCALES = (1 / 2, 1 / 3, 1 / 4, 1 / 6, 1 / 8)
SIZE_HEADER = 4  # bytes a downscaled file needs to store the original width and height
TOKEN_LADDER = (8, 16, 32, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
CLASSIC_SWEEP = (0, 1, 2, 5, 10, 20, 40, 60)


class Codec:
    """Encode pixels at a setting to whole-file bytes, and decode them back."""

    name = "codec"
    description = ""

    def encode(self, pixels: np.ndarray, setting: float) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes, size: tuple[int, int]) -> np.ndarray:
        raise NotImplementedError


class PillowCodec(Codec):
    """A Pillow format with an integer quality setting ``q_min..q_max`` (sizes grow with quality)."""

    def __init__(self, name: str, fmt: str, description: str, q_min: int = 0, q_max: int = 100, **options) -> None:
        self.name, self.format, self.description = name, fmt, description
        self.q_min, self.q_max, self.options = q_min, q_max, options

    def encode(self, pixels: np.ndarray, setting: float) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format=self.format, quality=int(setting), **self.options)
        return buffer.getvalue()

    def decode(self, data: bytes, size: tuple[int, int]) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)


class ScaledCodec(Codec):
    """Downscale by ``scale`` (Lanczos), code with ``base``, upscale back (Lanczos)."""

    def __init__(self, base: PillowCodec, scale: float) -> None:
        self.base, self.scale = base, scale
        self.name = f"{base.name}-down"
        self.q_min, self.q_max = base.q_min, base.q_max

    def small_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return max(1, round(size[0] * self.scale)), max(1, round(size[1] * self.scale))

    def encode(self, pixels: np.ndarray, setting: float) -> bytes:
        image = Image.fromarray(pixels)
        small = image.resize(self.small_size(image.size), Image.Resampling.LANCZOS)
        return bytes(SIZE_HEADER) + self.base.encode(np.asarray(small), setting)

    def decode(self, data: bytes, size: tuple[int, int]) -> np.ndarray:
        small = Image.fromarray(self.base.decode(data[SIZE_HEADER:], self.small_size(size)))
        return np.asarray(small.resize(size, Image.Resampling.LANCZOS), dtype=np.uint8)


class VtcodecCodec(Codec):
    """vtcodec at a number of tokens per tile."""

    def __init__(self, model: LoadedModel, decoder: str | Path | None = None, first: bool = True) -> None:
        from vtcodec.decoders import load_decoder

        self.model = model
        self.decoder = load_decoder(model, decoder)
        self.name = "vtcodec" if first else f"vtcodec-{self.decoder.name}"
        self.description = (
            f"vtcodec, model {model.model_id.hex()}, decoder {self.decoder.name}, tokens per tile as the setting"
        )

    def encode(self, pixels: np.ndarray, setting: float) -> bytes:
        return codec.compress(pixels, int(setting), model=self.model)

    def decode(self, data: bytes, size: tuple[int, int]) -> np.ndarray:
        return np.asarray(codec.decompress(data, model=self.model, decoder=self.decoder), dtype=np.uint8)


def classic_codecs() -> dict[str, PillowCodec]:
    return {
        "jpeg": PillowCodec("jpeg", "JPEG", "Pillow JPEG, optimize=True", 1, 95, optimize=True),
        "webp": PillowCodec("webp", "WEBP", "Pillow WebP, method=6", 0, 100, method=6),
        "avif": PillowCodec("avif", "AVIF", "Pillow AVIF (libavif)", 0, 100),
    }


def largest_fitting(encode: Callable[[int], bytes], q_min: int, q_max: int, max_bytes: int) -> tuple[int, bytes] | None:
    """Bisection over an integer quality: the quality whose file is the largest that is <= ``max_bytes``.

    Sizes are assumed to grow with quality; ``None`` if even ``q_min`` is too big.
    The qualities within 2 of the bisection result are also tried, since real
    encoders are not perfectly monotone.
    """
    cache: dict[int, bytes] = {}

    def size(q: int) -> int:
        if q not in cache:
            cache[q] = encode(q)
        return len(cache[q])

    lo = largest_passing(q_min, q_max, lambda q: size(q) <= max_bytes)
    if lo is None:
        return None
    best = lo
    for q in range(max(lo - 2, q_min), min(lo + 2, q_max) + 1):
        if size(q) <= max_bytes and size(q) > size(best):
            best = q
    return best, cache[best]


def bd_rate(rate_a: Sequence[float], quality_a: Sequence[float], rate_b: Sequence[float], quality_b: Sequence[float]):
    """Bjøntegaard delta rate of B against A in % (negative: B needs fewer bits), or None without overlap.

    log-rate is fitted as a cubic polynomial of quality (fewer points: lower
    degree) and integrated over the overlapping quality range.
    """
    qa, qb = np.asarray(quality_a, float), np.asarray(quality_b, float)
    la, lb = np.log(np.asarray(rate_a, float)), np.log(np.asarray(rate_b, float))
    if min(len(qa), len(qb)) < 2:
        return None
    low, high = max(qa.min(), qb.min()), min(qa.max(), qb.max())
    if not high > low:
        return None
    fits = [np.polyint(np.polyfit(q, lr, min(3, len(q) - 1))) for q, lr in ((qa, la), (qb, lb))]
    mean_a, mean_b = ((np.polyval(f, high) - np.polyval(f, low)) / (high - low) for f in fits)
    return float((math.exp(mean_b - mean_a) - 1) * 100)


class Metrics:
    """The chosen full-reference metrics (``vtcodec.metrics``) of a decoded image; NaN where not measurable."""

    def __init__(self, names: Sequence[str] | None = None) -> None:
        unknown = [n for n in names or () if n not in METRICS]
        if unknown:
            raise InputError(f"unknown metric {unknown[0]!r} (known: {', '.join(METRICS)})")
        absent = set(missing())
        self.names = list(names) if names else [n for n in METRICS if n not in absent]
        self.absent = [n for n in self.names if n in absent] + [n for n in absent if n not in self.names]

    @property
    def notes(self) -> list[str]:
        notes = [f"{n}: not measured (pip install 'vtcodec[eval]')" for n in self.absent]
        notes.append("ST-LPIPS: not measured (stlpips-pytorch needs torchvision, which this package does not require)")
        return notes

    def __call__(self, reference: np.ndarray, decoded: np.ndarray) -> dict[str, float]:
        return {name: METRICS[name](reference, decoded) for name in self.names}


@dataclass
class Row:
    """One measurement: an image, a codec, a vtcodec point, and what the codec did there."""

    image: str
    codec: str
    point: int
    setting: str
    bytes: int | None
    bpp: float | None
    scores: dict[str, float] | None  # metric name -> value

    def score(self, metric: str) -> float:
        return math.nan if self.scores is None else self.scores.get(metric, math.nan)


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
    out_dir.mkdir(parents=True, exist_ok=True)
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
    return _write_outputs(out_dir, rows, sweeps, codecs, token_points, metrics, per_image, crops, seconds, variants)


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


def _append_means(curve: dict[str, list], hits: list[Row], names: Sequence[str]) -> None:
    curve["bpp"].append(float(np.mean([r.bpp for r in hits])))
    for metric in names:
        curve[metric].append(float(np.mean([r.score(metric) for r in hits])))


def _mean_curve(rows: list[Row], codec_name: str, points: Sequence[int], names: Sequence[str]) -> dict[str, list]:
    """Per-point means over images; a point counts only if the codec reached it on every image."""
    curve: dict[str, list] = {"bpp": [], **{m: [] for m in names}, "tokens": []}
    for n in points:
        hits = [r for r in rows if r.codec == codec_name and r.point == n]
        if not hits or any(r.bytes is None for r in hits):
            continue
        _append_means(curve, hits, names)
        curve["tokens"].append(n)
    return curve


def _sweep_curve(sweeps: list[Row], codec_name: str, names: Sequence[str]) -> dict[str, list]:
    settings = sorted({r.setting for r in sweeps if r.codec == codec_name}, key=lambda s: int(s[2:]))
    curve: dict[str, list] = {"bpp": [], **{m: [] for m in names}, "quality": []}
    for s in settings:
        _append_means(curve, [r for r in sweeps if r.codec == codec_name and r.setting == s], names)
        curve["quality"].append(int(s[2:]))
    return curve


METRIC_LABELS = {"psnr-rgb": "PSNR-RGB (dB)", "ms-ssim": "MS-SSIM", "haarpsi": "HaarPSI", "ssimulacra2": "SSIMULACRA 2"}
PLOT_FILES = {"psnr-rgb": "rd-psnr.png", "ms-ssim": "rd-msssim.png"}  # others: rd-NAME.png


def _write_outputs(out_dir, rows, sweeps, codecs, points, metrics, per_image, crops, seconds, variants) -> dict:
    names = metrics.names
    ours = {v.name: v for v in variants}
    codec_names = ["vtcodec"] + [c for c in codecs if c != "vtcodec"]
    entries = []
    for name in codec_names:
        for variant in list(ours) if name == "vtcodec" else [name, f"{name}-down"]:
            curve = _mean_curve(rows, variant, points, names)
            reached = len(curve["bpp"])
            desc = ours[variant].description if variant in ours else f"{variant} at vtcodec's file sizes (equal bytes)"
            entries.append(
                {
                    "name": variant,
                    "description": f"{desc}; {reached}/{len(points)} points reachable on every image",
                    "results": curve,
                }
            )
    for name in codec_names[1:]:
        entries.append(
            {
                "name": f"{name}-sweep",
                "description": f"{name} at its own qualities",
                "results": _sweep_curve(sweeps, name, names),
            }
        )
    if per_image:
        for image in sorted({r.image for r in rows}):
            for variant in sorted({r.codec for r in rows}):
                mine = [r for r in rows if r.image == image and r.codec == variant and r.bytes is not None]
                entries.append(
                    {
                        "name": f"{variant}:{image}",
                        "description": f"{variant} on {image}",
                        "results": {"bpp": [r.bpp for r in mine], **{m: [r.score(m) for r in mine] for m in names}},
                    }
                )
    (out_dir / "results.json").write_text(json.dumps(entries, indent=1) + "\n")
    with (out_dir / "results.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        columns = [m.replace("-", "_") for m in names]
        writer.writerow(["image", "codec", "vtcodec_tokens", "setting", "bytes", "bpp", *columns])
        for r in rows + sweeps:
            scores = [None if r.scores is None else r.score(m) for m in names]
            writer.writerow([r.image, r.codec, r.point if r.point >= 0 else "", r.setting, r.bytes, r.bpp, *scores])
    header = " | ".join(f"BD-rate ({METRIC_LABELS.get(m, m).replace(' (dB)', '')})" for m in names)
    lines, bd = [], {}
    for mine in ours:
        ours_curve = next(e for e in entries if e["name"] == mine)["results"]
        bd[mine] = {}
        lines += [f"| {mine} against | {header} |", "|---|" + "---|" * len(names)]
        for entry in entries:
            if entry["name"] in ours or ":" in entry["name"]:
                continue
            curve = entry["results"]
            values = [
                bd_rate(curve["bpp"], curve[m], ours_curve["bpp"], ours_curve[m]) if curve["bpp"] else None
                for m in names
            ]
            bd[mine][entry["name"]] = values
            cells = [f"{v:+.1f} %" if v is not None and math.isfinite(v) else "no overlap" for v in values]
            lines.append(f"| {entry['name']} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("Negative: vtcodec needs fewer bits for the same quality, over the overlapping quality range.")
    (out_dir / "bd-rate.md").write_text("\n".join(lines) + "\n")
    _plot(out_dir, entries, metrics)
    if crops:
        _side_by_side(out_dir / "side-by-side.png", crops)
    summary_table = _summary_table(entries, names)
    (out_dir / "summary.md").write_text(summary_table + "\n")
    return {
        "entries": entries,
        "bd_rate": bd["vtcodec"],
        "bd_rate_by_decoder": bd,
        "table": summary_table,
        "bd_table": "\n".join(lines),
        "seconds": seconds,
        "notes": metrics.notes,
        "metrics": list(names),
    }


def _summary_table(entries: list[dict], names: Sequence[str]) -> str:
    labels = " | ".join(METRIC_LABELS.get(m, m) for m in names)
    lines = [f"| codec | points | bpp | {labels} |", "|---|---|---|" + "---|" * len(names)]
    for e in entries:
        if ":" in e["name"]:
            continue
        r = e["results"]
        for i in range(len(r["bpp"])):
            label = f"tokens {r['tokens'][i]}" if "tokens" in r else f"q {r['quality'][i]}"
            values = " | ".join(_format(m, r[m][i]) for m in names)
            lines.append(f"| {e['name']} | {label} | {r['bpp'][i]:.4f} | {values} |")
    return "\n".join(lines)


def _format(metric: str, value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.2f}" if metric in ("psnr-rgb", "ssimulacra2") else f"{value:.3f}"


def _plot(out_dir: Path, entries: list[dict], metrics: Metrics) -> None:
    try:
        import matplotlib
    except ImportError:
        raise InputError("plots need matplotlib: pip install 'vtcodec[bench]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for metric in metrics.names:
        filename = PLOT_FILES.get(metric, f"rd-{metric}.png")
        fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
        for e in entries:
            r = e["results"]
            if ":" in e["name"] or not r["bpp"] or all(math.isnan(v) for v in r[metric]):
                continue
            style = "-o" if e["name"].startswith("vtcodec") else ("--s" if e["name"].endswith("-down") else ":^")
            ax.plot(r["bpp"], r[metric], style, label=e["name"], markersize=4)
            if e["name"].endswith("-sweep"):
                ax.axvline(min(r["bpp"]), color=ax.lines[-1].get_color(), alpha=0.25, linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel("bits per pixel (whole-file bytes, log scale)")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.set_title("Rate-quality; faint vertical lines: each classic codec's floor (lowest quality)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out_dir / filename)
        plt.close(fig)


def _side_by_side(path: Path, images: dict[str, np.ndarray], crop: int = 256) -> None:
    height, width = next(iter(images.values())).shape[:2]
    side = min(crop, height, width)
    y, x = (height - side) // 2, (width - side) // 2
    label_h = 18
    sheet = Image.new("RGB", (side * len(images), side + label_h), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, pixels) in enumerate(images.items()):
        sheet.paste(Image.fromarray(pixels[y : y + side, x : x + side]), (i * side, label_h))
        draw.text((i * side + 4, 3), label, fill="black")
    sheet.save(path)
