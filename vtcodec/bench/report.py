"""What a bench run writes: mean curves, BD-rates, the JSON, CSV and tables, the plots and the side-by-side crop."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from vtcodec.errors import InputError
from vtcodec.metrics import METRICS, missing

if TYPE_CHECKING:
    from vtcodec.bench.codecs import VtcodecCodec


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


def mean_curves(
    rows: list[Row],
    sweeps: list[Row],
    codecs: Sequence[str],
    points: Sequence[int],
    names: Sequence[str],
    variants: Sequence[VtcodecCodec],
    per_image: bool,
) -> list[dict]:
    """The run's curves in CompressAI's results schema: each vtcodec decoder, each classic codec at
    vtcodec's bytes (full size and downscaled), each classic codec's own sweep, and per image if asked."""
    ours = {v.name: v for v in variants}
    classic = [c for c in codecs if c != "vtcodec"]
    entries = []
    for variant in [*ours, *(v for name in classic for v in (name, f"{name}-down"))]:
        curve = _mean_curve(rows, variant, points, names)
        desc = ours[variant].description if variant in ours else f"{variant} at vtcodec's file sizes (equal bytes)"
        reached = f"{len(curve['bpp'])}/{len(points)} points reachable on every image"
        entries.append({"name": variant, "description": f"{desc}; {reached}", "results": curve})
    for name in classic:
        curve = _sweep_curve(sweeps, name, names)
        entries.append({"name": f"{name}-sweep", "description": f"{name} at its own qualities", "results": curve})
    if per_image:
        for image in sorted({r.image for r in rows}):
            for variant in sorted({r.codec for r in rows}):
                mine = [r for r in rows if r.image == image and r.codec == variant and r.bytes is not None]
                results = {"bpp": [r.bpp for r in mine], **{m: [r.score(m) for r in mine] for m in names}}
                entries.append(
                    {"name": f"{variant}:{image}", "description": f"{variant} on {image}", "results": results}
                )
    return entries


def write_measurements(out_dir: Path, entries: list[dict], rows: list[Row], names: Sequence[str]) -> None:
    """``results.json`` (the curves) and ``results.csv`` (every measurement, one row each)."""
    (out_dir / "results.json").write_text(json.dumps(entries, indent=1) + "\n")
    with (out_dir / "results.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        columns = [m.replace("-", "_") for m in names]
        writer.writerow(["image", "codec", "vtcodec_tokens", "setting", "bytes", "bpp", *columns])
        for r in rows:
            scores = [None if r.scores is None else r.score(m) for m in names]
            writer.writerow([r.image, r.codec, r.point if r.point >= 0 else "", r.setting, r.bytes, r.bpp, *scores])


def bd_rates(entries: list[dict], ours: Sequence[str], names: Sequence[str]) -> tuple[dict, str]:
    """BD-rate of each vtcodec decoder against each reference curve (classic codecs, and for a decoder
    other than the default, the default on the same files), per metric; and the markdown table."""
    header = " | ".join(f"BD-rate ({METRIC_LABELS.get(m, m).replace(' (dB)', '')})" for m in names)
    lines, bd = [], {}
    for mine in ours:
        ours_curve = next(e for e in entries if e["name"] == mine)["results"]
        bd[mine] = {}
        references = [
            e for e in entries
            if ":" not in e["name"] and (e["name"] not in ours or (e["name"] == "vtcodec" and mine != "vtcodec"))
        ]  # fmt: skip
        if not references:
            lines += [f"{mine}: no reference in this run; BD-rate needs a classic codec (--codecs vtcodec,webp).", ""]
            continue
        lines += [f"| {mine} against | {header} |", "|---|" + "---|" * len(names)]
        apart = []  # references whose quality range never meets this decoder's
        for entry in references:
            curve = entry["results"]
            values = [
                bd_rate(curve["bpp"], curve[m], ours_curve["bpp"], ours_curve[m]) if curve["bpp"] else None
                for m in names
            ]
            bd[mine][entry["name"]] = values
            if not any(v is not None and math.isfinite(v) for v in values):
                apart.append(entry["name"])
                continue
            cells = [f"{v:+.1f} %" if v is not None and math.isfinite(v) else "no overlap" for v in values]
            lines.append(f"| {entry['name']} | " + " | ".join(cells) + " |")
        if apart:
            lines.append(f"\nNo quality overlap with {mine} (no BD-rate): {', '.join(apart)}.")
        lines.append("")
    lines.append(
        "Negative: the vtcodec decoder named in the header needs fewer bits than the row's reference"
        " for the same quality, over the overlapping quality range."
    )
    return bd, "\n".join(lines)


def write_outputs(
    out_dir: Path,
    rows: list[Row],
    sweeps: list[Row],
    codecs: Sequence[str],
    points: Sequence[int],
    metrics: Metrics,
    per_image: bool,
    crops: dict[str, np.ndarray],
    seconds: float,
    variants: Sequence[VtcodecCodec],
) -> dict:
    """Write everything a bench run reports into ``out_dir``, step by step; return its summary."""
    names = metrics.names
    ours = [v.name for v in variants]
    entries = mean_curves(rows, sweeps, codecs, points, names, variants, per_image)
    write_measurements(out_dir, entries, rows + sweeps, names)
    bd, bd_table = bd_rates(entries, ours, names)
    (out_dir / "bd-rate.md").write_text(bd_table + "\n")
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
        "bd_table": bd_table,
        "seconds": seconds,
        "notes": metrics.notes,
        "metrics": list(names),
    }


def _summary_table(entries: list[dict], names: Sequence[str]) -> str:
    labels = " | ".join(METRIC_LABELS.get(m, m) for m in names)
    lines = [f"| codec | at | bpp | {labels} |", "|---|---|---|" + "---|" * len(names)]
    for e in entries:
        if ":" in e["name"]:
            continue
        r = e["results"]
        for i in range(len(r["bpp"])):
            if "quality" in r:
                label = f"q {r['quality'][i]}"
            elif e["name"].startswith("vtcodec"):
                label = f"{r['tokens'][i]} tokens"
            else:  # a classic codec at the bytes of vtcodec's point
                label = f"bytes of {r['tokens'][i]} tokens"
            values = " | ".join(_format(m, r[m][i]) for m in names)
            lines.append(f"| {e['name']} | {label} | {r['bpp'][i]:.4f} | {values} |")
    return "\n".join(lines)


def _format(metric: str, value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.2f}" if metric in ("psnr-rgb", "ssimulacra2") else f"{value:.3f}"


def _plot(out_dir: Path, entries: list[dict], metrics: Metrics) -> None:
    try:
        import matplotlib  # optional: the bench extra
    except ImportError:
        raise InputError("plots need matplotlib: pip install 'vtcodec[bench]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # optional: the bench extra

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
