"""What handing large blocks back (``cli.common.return_large_blocks``) costs and saves in ``vtcodec decode``.

Each size is decoded by the CLI in fresh processes, alternating between the command as shipped and the
same command with ``return_large_blocks`` turned into a no-op (glibc's default threshold): median wall
time and the largest peak RSS (VmHWM) of each.

    python benchmarks/probes/decode_allocator.py --sizes 768x512 3072x2048 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import speed  # noqa: E402  (benchmarks/speed.py: one CLI run in a fresh process, its time and peak)

DEFAULT_MALLOC = "VTCODEC_PROBE_DEFAULT_MALLOC"
speed.RUNNER = (
    f"""
import os
if os.environ.get({DEFAULT_MALLOC!r}):
    import vtcodec.cli.coding as coding
    coding.return_large_blocks = lambda: False
"""
    + speed.RUNNER
)


def run(args: list[str], default_malloc: bool) -> tuple[float, float]:
    """Seconds and peak MB of ``vtcodec ARGS``, with glibc's default threshold or as shipped."""
    os.environ.pop(DEFAULT_MALLOC, None)
    if default_malloc:
        os.environ[DEFAULT_MALLOC] = "1"
    seconds, peak_kb = speed.run_once(ROOT, args)
    return seconds, peak_kb / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=ROOT / "samples" / "parrots.png")
    parser.add_argument("--sizes", nargs="+", default=["768x512", "3072x2048"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        source = Image.open(args.image).convert("RGB")
        for size in args.sizes:
            width, height = (int(v) for v in size.split("x"))
            image, vtk = Path(tmp) / f"{size}.png", Path(tmp) / f"{size}.vtk"
            source.resize((width, height), Image.Resampling.LANCZOS).save(image)
            subprocess.run([sys.executable, "-m", "vtcodec", "encode", str(image), "-o", str(vtk)], check=True)
            decode = ["decode", str(vtk), "-o", str(Path(tmp) / f"{size}.out.png"), "-f"]
            results = {"default": [], "shipped": []}
            for _ in range(args.repeat):
                for name in results:
                    results[name].append(run(decode, default_malloc=name == "default"))
            row = {"size": size}
            for name, runs in results.items():
                row[name] = {
                    "seconds": round(statistics.median(s for s, _ in runs), 3),
                    "peak_mb": round(max(p for _, p in runs), 1),
                }
            row["time_ratio"] = round(row["shipped"]["seconds"] / row["default"]["seconds"], 3)
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(
            json.dumps({"image": str(args.image), "repeat": args.repeat, "rows": rows}, indent=1) + "\n"
        )


if __name__ == "__main__":
    main()
