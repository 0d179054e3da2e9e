"""Time and peak memory of each hostile-file reproduction, each run as a fresh ``vtcodec`` process.

    python benchmarks/hostile_files.py [--skip-slow] [--json out.json]

The files are made here with the shipped model's id: a 24-byte file declaring 13377²
pixels, a 25-byte 4096² one (under the pixel limit: it decodes, so it shows the
windowed decoder's memory; ``--skip-slow`` leaves it out), a 13377² alpha chunk (``info``
with the limit lifted), a payload shorter than its counts, a 370-byte decoder file that
declares a 2.3 G-parameter network, and a model file declaring 4096 channels. For each:
exit code, the first line of stderr, wall seconds and the process's peak RSS
(``VmHWM``). ``tests/test_bounded.py`` checks the same behaviour at small sizes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

import vtcodec
from vtcodec import container, metadata
from vtcodec.decoders import choose
from vtcodec.decoders.files import DECODER_KEY
from vtcodec.pipeline import Layout
from vtcodec.registry import CONFIG_KEY
from vtcodec.zoo import default_weights, load_model

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.test_fuzz import with_metadata  # noqa: E402


def declared(model_id: bytes, side: int, chunks: tuple = (), payload: bytes = b"") -> bytes:
    tiles = container.TileGrid(side, side, 128).count
    header = container.Header(
        model_id, side, side, 128, np.zeros(tiles, np.int64), container.Coder.CONTEXT, chunks=chunks
    )
    return container.pack(header, payload)


# Runs the CLI and writes its own peak RSS (VmHWM, kB) at exit: getrusage's ru_maxrss would not do, since
# Linux carries a parent's peak across fork and exec.
LAUNCHER = """
import atexit, runpy, sys
report = sys.argv.pop(1)
def peak():
    line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    open(report, "w").write(line.split()[1])
atexit.register(peak)
sys.argv[0] = "vtcodec"
runpy.run_module("vtcodec", run_name="__main__")
"""


def measure(args: list[str]) -> dict:
    """Run ``vtcodec ARGS``; its exit code, first line of stderr, seconds and peak RSS (MB)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile() as report:
        done = subprocess.run(
            [sys.executable, "-c", LAUNCHER, report.name, *args], stdout=subprocess.DEVNULL, stderr=err
        )
        seconds = time.perf_counter() - start
        err.seek(0)
        lines = err.read().decode("utf-8", "replace").strip().splitlines()
        peak_kb = int(Path(report.name).read_text() or 0)
    return {
        "exit": done.returncode,
        "stderr": lines[0][:140] if lines else "",
        "stderr_lines": len(lines),
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak_kb / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-slow", action="store_true", help="leave out the 4096² decode (about a minute)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    out = Path(args.json).resolve() if args.json else None
    model = load_model()
    work = Path(tempfile.mkdtemp(prefix="vtcodec-hostile-"))
    files = {
        "bomb-13377.vtk": declared(model.model_id, 13377),
        "bomb-4096.vtk": declared(model.model_id, 4096),
        "alpha-13377.vtk": declared(
            model.model_id, 13377, ((metadata.ALPHA, bytes([1, 1]) + zlib.compress(b"\x01" * 13377**2, 9)),)
        ),
    }
    parrots = np.asarray(vtcodec.pillow.Image.open(ROOT / "samples" / "parrots.png").convert("RGB"))
    sample = vtcodec.compress(parrots, layout=Layout(1))  # one payload, so that a taller header can lie about it
    header, payload = container.unpack(sample)
    taller = dataclasses.replace(
        header, height=2 * header.height, token_counts=np.full(2 * header.token_counts.size, 64)
    )
    files["short-payload.vtk"] = container.pack(taller, payload)
    files["parrots.vtk"] = sample
    huge = {"decoder_blocks": [64] * 4, "decoder_hidden": [4096] * 4, "decoder_attention": 64}
    decoder_file = choose(model, None).path.read_bytes()
    length = int.from_bytes(decoder_file[:8], "little")
    meta = json.loads(json.loads(decoder_file[8 : 8 + length])["__metadata__"][DECODER_KEY])
    # A header alone, no tensors: the declaration is what asks for the network.
    forged = json.dumps({"__metadata__": {DECODER_KEY: json.dumps({**meta, "architecture": huge})}}).encode()
    forged += b" " * (-len(forged) % 8)
    files["forged.decoder.safetensors"] = len(forged).to_bytes(8, "little") + forged
    files["wide.safetensors"] = with_metadata(
        default_weights().read_bytes(), CONFIG_KEY, lambda cfg: {**cfg, "channels": [4096] * 4}
    )
    for name, data in files.items():
        (work / name).write_bytes(data)
    cases = {
        "24-byte 13377² file, decode": ["decode", "bomb-13377.vtk", "-o", "a.png"],
        "24-byte 13377² file, info": ["info", "bomb-13377.vtk"],
        "13377² alpha chunk, info, limit lifted": ["info", "alpha-13377.vtk", "--max-pixels", "0"],
        "13377² alpha chunk, decode": ["decode", "alpha-13377.vtk", "-o", "b.png"],
        "payload shorter than its counts, decode": ["decode", "short-payload.vtk", "-o", "c.png"],
        f"{len(files['forged.decoder.safetensors'])}-byte decoder file, 2.3 G parameters": [
            "decode", "parrots.vtk", "-o", "d.png", "--decoder", "forged.decoder.safetensors",
        ],
        "model file declaring 4096 channels": ["encode", str(ROOT / "samples" / "parrots.png"), "-o", "e.vtk",
                                               "--model", "wide.safetensors"],
    }  # fmt: skip
    if not args.skip_slow:
        cases["25-byte 4096² file, decode (under the limit)"] = ["decode", "bomb-4096.vtk", "-o", "f.png"]
    results = {}
    os.chdir(work)
    for label, command in cases.items():
        results[label] = measure(command)
        r = results[label]
        print(f"{label}: exit {r['exit']}, {r['seconds']} s, {r['peak_rss_mb']} MB, {r['stderr_lines']} line(s): "
              f"{r['stderr']}", flush=True)  # fmt: skip
    if out is not None:
        out.write_text(json.dumps({"vtcodec": vtcodec.__version__, "cases": results}, indent=1))


if __name__ == "__main__":
    main()
