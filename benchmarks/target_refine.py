"""PSNR and quality targets with fewer decodes: the whole length ladder against a coarse ladder
refined around a first allocation (``rate.coarse_to_fine``, what ``--psnr`` and ``-q`` do since
2026-12-06).

For each photo the RD table is measured over the whole ladder (``rate.LADDER``, 28 decodes, what
both targets did before) and, per target, by ``coarse_to_fine``: ``--coarse`` uniform lengths (plus 0
and every token), then per round (``--around``) an allocation and one decode per factor, every tile
at that multiple of its own count. Then the tables go through the same allocation:

- ``--psnr``: targets are the PSNR of the uniform counts ``--uniform`` (read off the whole ladder,
  so each is reachable); each file is checked by a decode, as ``fit_psnr`` does. ``before`` is the
  whole ladder allocated as before 2026-12-06 (measured lengths only), ``ladder`` the whole ladder
  allocated as now. Reported: bytes against ``before`` (fewer is better) and the PSNR reached.
- ``-q``: reported are bytes, PSNR and the objective the quality mode minimizes, ``SSE + slope * bits``
  of the decoded file (lower is better), as the ratio new / ladder.

Decodes are counted (every ``render_padded`` call), seconds measured.

    python benchmarks/target_refine.py --images ../shared/data/train/bsds500/val --limit 16
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

import vtcodec
from vtcodec import rate
from vtcodec.codec import fit_psnr, fit_quality, slope_for_quality
from vtcodec.decoders import load_decoder
from vtcodec.decoders.rendering import Decoder
from vtcodec.metrics import psnr_rgb

NAMES = ("before", "ladder", "refined")
RENDERS = [0]  # decodes so far, by every Decoder in this process


def count_renders() -> None:
    """Make every ``Decoder.render_padded`` call add one to ``RENDERS``."""
    render_padded = Decoder.render_padded

    def counting(self, *args, **kwargs):
        RENDERS[0] += 1
        return render_padded(self, *args, **kwargs)

    Decoder.render_padded = counting


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=16)
    parser.add_argument("--uniform", type=int, nargs="*", default=[16, 64, 192])
    parser.add_argument("--quality", type=float, nargs="*", default=[30, 50, 70, 90])
    parser.add_argument("--coarse", type=int, nargs="+", default=list(rate.COARSE))
    parser.add_argument(
        "--around",
        nargs="+",
        default=[",".join(map(str, r)) for r in rate.AROUND],
        help="per round, its factors joined by commas",
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--summarize", action="store_true", help="Only summarize the rows of an earlier --json.")
    args = parser.parse_args()
    if args.summarize:
        record = json.loads(args.json.read_text())
        record["summary"] = summarize(record["rows"], args)
        args.json.write_text(json.dumps(record, indent=1) + "\n")
        return
    coarse = tuple(args.coarse)
    around = tuple(tuple(float(f) for f in r.split(",")) for r in args.around)
    model = vtcodec.load_model()
    count_renders()
    decoder = load_decoder(model)
    k = model.config.max_tokens
    files = sorted(p for p in args.images.iterdir() if p.suffix.lower() in (".png", ".jpg"))[: args.limit]
    rows = []
    for path in files:
        pixels = np.asarray(Image.open(path).convert("RGB"))
        tokens = vtcodec.tokenize(pixels, model)
        RENDERS[0], start = 0, time.perf_counter()
        ladder = rate.measure(pixels, tokens, model, decoder)
        ladder_cost = (RENDERS[0], time.perf_counter() - start)
        targets = [("psnr", psnr_of(ladder, list(ladder.lengths).index(min(n, k)))) for n in args.uniform]
        targets += [("quality", q) for q in args.quality]
        for kind, value in targets:
            row = {"image": path.name, kind: round(value, 3)}
            for name in ("before", "ladder", "refined") if kind == "psnr" else ("ladder", "refined"):
                RENDERS[0], start = 0, time.perf_counter()
                table, spent = ladder, ladder_cost
                if name == "refined":
                    spent = (0, 0.0)
                    table = rate.coarse_to_fine(
                        pixels, tokens, model, decoder, allocator(kind, value, tokens), False, coarse, around
                    )
                fit = fit_psnr if kind == "psnr" else fit_quality
                interpolating = rate.allocate_for_sse
                if name == "before":
                    rate.allocate_for_sse = measured_only_allocate_for_sse
                try:
                    result = fit(pixels, tokens, model, value, table=table, decoder=decoder)
                finally:
                    rate.allocate_for_sse = interpolating
                renders = RENDERS[0] + spent[0]
                seconds = time.perf_counter() - start + spent[1]
                decoded = decoder.render(tokens.ids, result.counts, tokens.grid)
                sse = float(((decoded.astype(np.int64) - pixels) ** 2).sum())
                row[name] = {
                    "bytes": len(result.data),
                    "psnr": round(psnr_rgb(pixels, decoded), 4),
                    "decodes": renders,
                    "seconds": round(seconds, 3),
                }
                if kind == "quality":
                    row[name]["objective"] = sse + slope_for_quality(value) * 8 * len(result.data)
            rows.append(row)
            report = " | ".join(
                f"{name} {r['bytes']:6d} B {r['psnr']:.3f} dB ({r['decodes']})"
                for name, r in row.items()
                if name in NAMES
            )
            print(f"{path.name:14s} {kind} {value:6.2f}: {report}", flush=True)
    summary = summarize(rows, args)
    if args.json:
        record = {"coarse": coarse, "around": around, "summary": summary, "rows": rows}
        args.json.write_text(json.dumps(record, indent=1) + "\n")


def measured_only_allocate_for_sse(table: rate.RDTable, max_sse: float) -> np.ndarray | None:
    """``rate.allocate_for_sse`` as it was before 2026-12-06: measured lengths only, no interpolation."""
    sse, lengths = table.sse, table.lengths
    bits = table.bits[:, lengths]
    rows = np.arange(len(sse))
    if sse.min(axis=1).sum() > max_sse:
        return None
    pick = rate._lagrangian(sse, bits, lambda c: sse[rows, c].sum() <= max_sse, ok_high=False)
    if sse[rows, pick].sum() > max_sse:
        pick = np.argmin(sse, axis=1)
    return lengths[pick]


def psnr_of(table: rate.RDTable, column: int) -> float:
    return float(10 * np.log10(3 * table.pixels * 255.0**2 / table.sse[:, column].sum()))


def allocator(kind: str, value: float, tokens):
    """The first allocation ``fit_psnr`` or ``fit_quality`` refines around."""
    if kind == "quality":
        slope = slope_for_quality(value)
        return lambda table: rate.allocate_for_slope(table, slope)
    max_sse = rate.sse_for_psnr(tokens.grid.width * tokens.grid.height, value)
    return lambda table: rate.allocate_for_sse(table, max_sse)


def db_at_equal_bytes(row: dict, name: str, rows: list[dict]) -> float:
    """``name``'s PSNR over ``before``'s at equal bytes: the PSNR difference, less the bytes difference
    times the slope of ``before``'s PSNR against log2 bytes between this target and the nearest other
    one of the same image."""
    own = [r for r in rows if r["image"] == row["image"]]
    i = own.index(row)
    a, b = own[max(i - 1, 0)], own[max(i - 1, 0) + 1]
    slope = (b["before"]["psnr"] - a["before"]["psnr"]) / math.log2(b["before"]["bytes"] / a["before"]["bytes"])
    return row[name]["psnr"] - row["before"]["psnr"] - slope * math.log2(row[name]["bytes"] / row["before"]["bytes"])


def summarize(rows: list[dict], args) -> dict:
    summary = {}
    for kind, values in (("psnr", None), ("quality", args.quality)):
        picked = [r for r in rows if kind in r]
        groups = [(f"uniform {n}", picked[i :: len(args.uniform)]) for i, n in enumerate(args.uniform)]
        if kind == "quality":
            groups = [(f"quality {q:g}", [r for r in picked if r["quality"] == q]) for q in values]
        for label, group in groups:
            if not group:
                continue
            ref = "before" if kind == "psnr" else "ladder"  # what the code did before 2026-12-06
            entry = {"against": ref}
            for name in [n for n in NAMES if n != ref and n in group[0]]:
                ratio = [r[name]["bytes"] / r[ref]["bytes"] for r in group]
                entry[name] = {
                    "bytes_ratio_mean": round(statistics.mean(ratio), 4),
                    "bytes_ratio_worst": round(max(ratio), 4),
                    "psnr_delta_mean": round(statistics.mean(r[name]["psnr"] - r[ref]["psnr"] for r in group), 4),
                }
            for name in [n for n in NAMES if n in group[0]]:
                entry[f"{name}_decodes"] = round(statistics.mean(r[name]["decodes"] for r in group), 2)
                entry[f"{name}_seconds"] = round(statistics.mean(r[name]["seconds"] for r in group), 3)
            if kind == "psnr":
                for name in [n for n in NAMES if n != ref and n in group[0]]:
                    gains = [db_at_equal_bytes(r, name, picked) for r in group]
                    entry[name]["db_at_equal_bytes_mean"] = round(statistics.mean(gains), 4)
                    entry[name]["db_at_equal_bytes_worst"] = round(min(gains), 4)
            if kind == "quality":
                objective = [r["refined"]["objective"] / r["ladder"]["objective"] for r in group]
                entry["objective_ratio_mean"] = round(statistics.mean(objective), 4)
                entry["objective_ratio_worst"] = round(max(objective), 4)
            summary[f"{kind} {label}"] = entry
            print(f"{kind} {label}: {json.dumps(entry)}", flush=True)
    return summary


if __name__ == "__main__":
    main()
