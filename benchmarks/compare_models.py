"""Compare two models' rate-quality curves at equal bytes, from two ``kodak_eval.py --json`` tables.

    python benchmarks/kodak_eval.py --images DIR --model A --json a.json
    python benchmarks/kodak_eval.py --images DIR --model B --json b.json
    python benchmarks/compare_models.py a.json b.json
    python benchmarks/compare_models.py OLD/results.json NEW/results.json   # two vtcodec bench runs

For every point of A, B's PSNR and MS-SSIM are interpolated (linearly in log bpp)
at A's bpp; points outside B's range are marked "out of range". Positive deltas
mean B is better at equal bytes. Use a held-out folder to choose a model, and
Kodak only to report.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def load(path: str) -> tuple[str, list[dict]]:
    """The model id and rows of a ``kodak_eval.py`` table, or of a ``vtcodec bench`` results.json."""
    table = json.loads(Path(path).read_text())
    if isinstance(table, list):  # vtcodec bench: CompressAI's schema, one entry per codec
        entry = next(e for e in table if e["name"] == "vtcodec")
        model_id = entry["description"].split("model ")[1].split(",")[0]
        curve = entry["results"]
        rows = [
            {"tokens": n, "bpp": b, "psnr": p, "msssim": m}
            for n, b, p, m in zip(curve["tokens"], curve["bpp"], curve["psnr-rgb"], curve["ms-ssim"], strict=True)
        ]
    else:
        model_id, rows = table["model_id"], table["rows"]
    return model_id, sorted((r for r in rows if r["tokens"] > 0), key=lambda r: r["bpp"])


def at_bpp(rows: list[dict], key: str, bpp: float) -> float | None:
    rates = np.log([r["bpp"] for r in rows])
    values = [r[key] for r in rows]
    if None in values or not rates[0] <= np.log(bpp) <= rates[-1]:
        return None
    return float(np.interp(np.log(bpp), rates, values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a")
    parser.add_argument("b")
    args = parser.parse_args()
    (id_a, rows_a), (id_b, rows_b) = load(args.a), load(args.b)
    print(f"A = {id_a} ({args.a}), B = {id_b} ({args.b}); B interpolated at A's bpp")
    print("| A tokens | bpp | A PSNR | B PSNR | delta dB | A MS-SSIM | B MS-SSIM | delta |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows_a:
        psnr_b, msssim_b = at_bpp(rows_b, "psnr", row["bpp"]), at_bpp(rows_b, "msssim", row["bpp"])
        if psnr_b is None:
            print(f"| {row['tokens']} | {row['bpp']:.4f} | {row['psnr']:.2f} | out of range | | | | |")
            continue
        ms_a = row["msssim"]
        ms = f"{ms_a:.4f} | {msssim_b:.4f} | {msssim_b - ms_a:+.4f}" if ms_a is not None and msssim_b else "| |"
        delta = psnr_b - row["psnr"]
        print(f"| {row['tokens']} | {row['bpp']:.4f} | {row['psnr']:.2f} | {psnr_b:.2f} | {delta:+.2f} | {ms} |")


if __name__ == "__main__":
    main()
