"""Long mutation-fuzzing campaign over the ``.vtk`` decoder (the fast version runs in the test suite).

    python fuzz/campaign.py --cases 100000 [--seed 1] [--model PATH]

Seeds are the golden files in ``samples/`` (decoded with the shipped model) and
fresh encodes of random images with several token counts. Every mutated input
must decode to valid tokens and pixels, or raise ``FormatError`` (corrupt) or
``UnknownModelError`` (a damaged model id); anything else is a finding, printed
with the input's hex so that it can be replayed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import vtcodec  # noqa: E402
from tests.conftest import random_image  # noqa: E402
from tests.test_fuzz import mutate  # noqa: E402
from vtcodec.codec import read_tokens, render  # noqa: E402
from vtcodec.errors import FormatError, UnknownModelError  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--render-every", type=int, default=50, help="also decode pixels of every Nth valid input")
    args = parser.parse_args()
    model = vtcodec.load_model(args.model)
    seeds = [p.read_bytes() for p in sorted((ROOT / "samples").glob("*.vtk"))] if args.model is None else []
    for i, (w, h) in enumerate([(1, 1), (130, 40), (300, 200), (17, 520)]):
        seeds.append(
            vtcodec.compress(random_image(w, h, seed=i), tokens=[1, 8, 64, model.config.max_tokens][i], model=model)
        )
    rng = np.random.default_rng(args.seed)
    outcomes: Counter[str] = Counter()
    findings = 0
    start = time.perf_counter()
    for case in range(args.cases):
        data = mutate(seeds[case % len(seeds)], rng)
        try:
            stream = read_tokens(data, model)
            ids = stream.ids
            assert ids.shape[0] == stream.header.grid[0] * stream.header.grid[1]
            assert ((ids >= 0) & (ids < model.codebook_size)).all()
            if outcomes["ok"] % args.render_every == 0:
                image = render(stream)
                assert image.size == (stream.header.width, stream.header.height)
            outcomes["ok"] += 1
        except FormatError:
            outcomes["format error"] += 1
        except UnknownModelError:
            outcomes["unknown model"] += 1
        except Exception as exc:  # a finding: anything else is a bug
            findings += 1
            print(f"FINDING case {case}: {type(exc).__name__}: {exc}\n  input: {data.hex()}", flush=True)
        if (case + 1) % 10_000 == 0:
            print(f"{case + 1} inputs, {dict(outcomes)}, {findings} findings", flush=True)
    seconds = time.perf_counter() - start
    print(
        f"done: {args.cases} inputs in {seconds:.0f} s ({args.cases / seconds:.0f}/s), {dict(outcomes)}, "
        f"{findings} findings"
    )
    sys.exit(1 if findings else 0)


if __name__ == "__main__":
    main()
