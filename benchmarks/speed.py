"""Speed of everyday commands, this tree against a base commit, in one run on one machine.

Each command runs as a fresh process, alternating between the two trees, ``--repeat``
times; the median wall time and the peak RSS (VmHWM of the child) are reported, and
the ratio base / now. The base tree is a ``git worktree`` of ``--base`` in a temporary
folder, run with ``PYTHONPATH`` pointing at it, so both use the same interpreter and
packages.

    python benchmarks/speed.py --base 78b4874 --image samples/parrots.png

It also prints, for each tree, the time of a byte-budget encode (``--bpp``) over a plain one.
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


def commands(image: Path, vtk: Path, out: Path, bpp: float) -> dict[str, list[str]]:
    return {
        "vtcodec --help": ["--help"],
        "vtcodec info FILE": ["info", str(vtk)],
        "vtcodec encode -t 64": ["encode", str(image), "-t", "64", "-o", str(out / "a.vtk"), "-f"],
        f"vtcodec encode --bpp {bpp:g}": ["encode", str(image), "--bpp", f"{bpp:g}", "-o", str(out / "b.vtk"), "-f"],
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
            for label, cmd in commands(args.image, vtk, out, args.bpp).items():
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
            plain, budget = results["vtcodec encode -t 64"], results[f"vtcodec encode --bpp {args.bpp:g}"]
            for name in ("base", "now"):  # the target: a budget encode at most 3x a plain one
                ratio = budget[name] / plain[name]
                results[f"budget/plain {name}"] = round(ratio, 2)
                print(f"{name:4s}: encode --bpp {args.bpp:g} takes {ratio:.1f}x the time of encode -t 64", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], capture_output=True)
    if args.json:
        record = {"base": args.base, "image": str(args.image), "repeat": args.repeat, "results": results}
        args.json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
