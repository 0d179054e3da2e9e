"""Speed of everyday commands, this tree against a base commit, in one run on one machine.

Each command runs as a fresh process, alternating between the two trees, ``--repeat``
times; the median wall time and the peak RSS (VmHWM of the child) are reported, and
the ratio base / now. The base tree is a ``git worktree`` of ``--base`` in a temporary
folder, run with ``PYTHONPATH`` pointing at it, so both use the same interpreter and
packages.

    python benchmarks/speed.py --base 78b4874 --image samples/parrots.png

It also prints, for each tree, the time of each target encode (``--bpp``, ``--psnr``, ``-q``)
over a plain one.
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

ROOT = Path(__file__).resolve().parent.parent

# The child reads its own peak RSS (VmHWM): getrusage would carry the parent's peak across fork+exec.
RUNNER = """
import runpy, sys, atexit
def peak():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            sys.stderr.write('VMHWM ' + line.split()[1] + '\\n')
atexit.register(peak)
sys.argv = ['vtcodec', *sys.argv[1:]]
runpy.run_module('vtcodec', run_name='__main__')
"""


PLAIN = "vtcodec encode -t 64"


def targets(bpp: float, psnr: float, quality: float) -> dict[str, list[str]]:
    """The target encodes, each timed against a plain one: label -> its options."""
    return {
        f"vtcodec encode --bpp {bpp:g}": ["--bpp", f"{bpp:g}"],
        f"vtcodec encode --psnr {psnr:g}": ["--psnr", f"{psnr:g}"],
        f"vtcodec encode -q {quality:g}": ["-q", f"{quality:g}"],
    }


def commands(image: Path, vtk: Path, out: Path, options: dict[str, list[str]]) -> dict[str, list[str]]:
    encodes = {label: ["encode", str(image), *opts, "-o", str(out / "b.vtk"), "-f"] for label, opts in options.items()}
    return {
        "vtcodec --help": ["--help"],
        "vtcodec info FILE": ["info", str(vtk)],
        PLAIN: ["encode", str(image), "-t", "64", "-o", str(out / "a.vtk"), "-f"],
        **encodes,
        "vtcodec decode": ["decode", str(vtk), "-o", str(out / "a.png"), "-f"],
    }


def run_once(tree: Path, args: list[str]) -> tuple[float, int]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    # cwd = the tree: `python -c` puts the working directory first on sys.path, before PYTHONPATH
    done = subprocess.run([sys.executable, "-c", RUNNER, *args], env=env, cwd=tree, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{tree}: vtcodec {' '.join(args)} failed: {done.stderr.strip()[-300:]}")
    peak = next((int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("VMHWM ")), 0)
    return seconds, peak


def which_tree(tree: Path) -> str:
    """The folder that ``import vtcodec`` loads from, run as the timed commands are."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    code = "import vtcodec, pathlib; print(pathlib.Path(vtcodec.__file__).parent.parent)"
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tree, capture_output=True, text=True)
    return done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="The commit to compare against.")
    parser.add_argument("--image", type=Path, default=ROOT / "samples" / "parrots.png")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--bpp", type=float, default=0.04, help="The budget encode's budget, in bits per pixel.")
    parser.add_argument("--psnr", type=float, default=19.0, help="The PSNR target encode's target, in dB.")
    parser.add_argument("--quality", type=float, default=50.0, help="The quality target encode's quality.")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.image = args.image.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.base],
            check=True,
            capture_output=True,
        )
        try:
            for tree in (base, ROOT):
                if Path(which_tree(tree)).resolve() != tree.resolve():
                    raise SystemExit(f"{tree}: vtcodec loads from {which_tree(tree)}, not from this tree")
            out = Path(tmp) / "out"
            out.mkdir()
            vtk = out / "input.vtk"
            subprocess.run(
                [sys.executable, "-m", "vtcodec", "encode", str(args.image), "-o", str(vtk), "-f"],
                check=True,
                capture_output=True,
                cwd=ROOT,
            )
            results = {}
            options = targets(args.bpp, args.psnr, args.quality)
            for label, cmd in commands(args.image, vtk, out, options).items():
                times = {"base": [], "now": []}
                peaks = {"base": [], "now": []}
                for _ in range(args.repeat):
                    for name, tree in (("base", base), ("now", ROOT)):
                        seconds, peak = run_once(tree, cmd)
                        times[name].append(seconds)
                        peaks[name].append(peak)
                row = {k: round(statistics.median(v), 3) for k, v in times.items()}
                row.update({f"{k}_peak_mb": round(max(v) / 1024, 1) for k, v in peaks.items()})
                row["ratio"] = round(row["base"] / row["now"], 2)
                results[label] = row
                print(
                    f"{label:24s} base {row['base']:7.3f} s  now {row['now']:7.3f} s  base/now {row['ratio']:5.2f}x"
                    f"  peak RSS {row['base_peak_mb']:.0f} -> {row['now_peak_mb']:.0f} MB",
                    flush=True,
                )
            for label in options:  # the target: each at most 3x a plain encode
                for name in ("base", "now"):
                    ratio = results[label][name] / results[PLAIN][name]
                    results[f"{label.removeprefix('vtcodec encode ')} / plain {name}"] = round(ratio, 2)
                    print(f"{name:4s}: {label} takes {ratio:.1f}x the time of {PLAIN}", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], capture_output=True)
    if args.json:
        record = {"base": args.base, "image": str(args.image), "repeat": args.repeat, "results": results}
        args.json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
