"""Peak memory of encode, decode and a byte budget at several image sizes, each a fresh process.

The sample photo is resized (Lanczos) to each size; the peak RSS is the child's own VmHWM
(``benchmarks/speed.py``). Per-pixel growth shows whether memory grows faster than the image.

    python benchmarks/memory_scaling.py --sizes 384x256 768x512 1536x1024 3072x2048 --budget-sizes 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from PIL import Image
from speed import ROOT, run_once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=ROOT / "samples" / "parrots.png")
    parser.add_argument("--sizes", nargs="+", default=["384x256", "768x512", "1536x1024", "3072x2048"])
    parser.add_argument("--budget-sizes", type=int, default=2, help="Measure --bytes on the first N sizes only.")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        source = Image.open(args.image.resolve()).convert("RGB")
        for i, size in enumerate(args.sizes):
            width, height = (int(v) for v in size.split("x"))
            image = Path(tmp) / f"{size}.png"
            source.resize((width, height), Image.Resampling.LANCZOS).save(image)
            vtk = Path(tmp) / f"{size}.vtk"
            commands = {
                "encode -t 64": ["encode", str(image), "-t", "64", "-o", str(vtk), "-f"],
                "decode": ["decode", str(vtk), "-o", str(Path(tmp) / f"{size}.out.png"), "-f"],
            }
            if i < args.budget_sizes:
                budget = str(int(0.04 * width * height / 8))
                commands["--bytes (0.04 bpp)"] = ["encode", str(image), "--bytes", budget, "-o", str(vtk), "-f", "-Q"]
            for label, command in commands.items():
                seconds, peak_kb = run_once(ROOT, command)
                row = {"size": size, "pixels": width * height, "command": label, "seconds": round(seconds, 2)}
                row["peak_mb"] = round(peak_kb / 1024, 1)
                rows.append(row)
                print(f"{size:>10} {label:20s} {row['seconds']:7.2f} s  peak {row['peak_mb']:7.1f} MB", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"image": str(args.image), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
