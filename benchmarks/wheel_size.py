"""Build the wheel and report its size and its largest members (issue 17: at most 30 MB).

    python benchmarks/wheel_size.py [--out DIR]

Copies the working tree as a fresh clone would have it (``git ls-files``: tracked
files and untracked ones that git does not ignore, so no stale ``build/``), runs
``pip wheel --no-deps --no-build-isolation`` on the copy into a temporary folder
(or ``--out``), and prints the wheel's bytes and its ten largest files, stored and
compressed. The weights inside are those that the registry marks ``shipped``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUDGET = 30 * 1024 * 1024


def build(out: Path, scratch: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True, capture_output=True
    ).stdout.decode()
    tree = scratch / "tree"
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, tree / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(tree), "--no-deps", "--no-build-isolation", "-q", "-w", str(out)],
        check=True,
    )
    return next(out.glob("vtcodec-*.whl"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, help="keep the wheel in this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "wheel"
        out.mkdir(parents=True, exist_ok=True)
        wheel = build(out, Path(tmp))
        size = wheel.stat().st_size
        with zipfile.ZipFile(wheel) as archive:
            members = sorted(archive.infolist(), key=lambda m: m.compress_size, reverse=True)
        print(f"{wheel.name}: {size:,} bytes ({size / 2**20:.1f} MiB; budget {BUDGET / 2**20:.0f} MiB)")
        print(f"{'file':<48} {'stored':>12} {'in wheel':>12}")
        for member in members[:10]:
            print(f"{member.filename:<48} {member.file_size:>12,} {member.compress_size:>12,}")
        print("within budget" if size <= BUDGET else "OVER BUDGET")


if __name__ == "__main__":
    main()
