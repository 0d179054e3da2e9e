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
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
RUNNER = """
import atexit, os, runpy, sys
if os.environ.get("VTCODEC_PROBE_DEFAULT_MALLOC"):
    import vtcodec.cli.coding as coding
    coding.return_large_blocks = lambda: False
def peak():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            sys.stderr.write('VMHWM ' + line.split()[1] + '\\n')
atexit.register(peak)
sys.argv = ['vtcodec', *sys.argv[1:]]
runpy.run_module('vtcodec', run_name='__main__')
"""


def run(args: list[str], default_malloc: bool) -> tuple[float, float]:
    env = {"VTCODEC_PROBE_DEFAULT_MALLOC": "1"} if default_malloc else {}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, *args], env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    seconds = time.perf_counter() - start
    peak = next(int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("VMHWM "))
    return seconds, peak / 1024


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
