"""Long mutation-fuzzing campaign over the ``.vtk`` decoder (the fast version runs in the test suite).

    python fuzz/campaign.py --cases 100000 [--seed 1] [--model PATH]

Seeds are the golden files in ``samples/`` (decoded with the shipped model) and
fresh encodes of random images with several token counts. Mutations
(``tests.test_fuzz.mutate``) are byte-level damage and well-formed lies: huge declared
sizes, token counts the payload does not hold, payloads cut short, alpha chunks that
inflate to large planes. Every mutated input must decode to valid tokens and pixels,
or raise ``FormatError`` (corrupt) or ``UnknownModelError`` (a damaged model id);
anything else is a finding, printed with the input's hex so that it can be replayed.
Every ``--weights-every``-th case is instead a model or decoder file whose declared
architecture was inflated (``tests.test_fuzz.inflate_architecture``): it must load or
raise ``InputError``, within ``--max-rss`` of peak memory.
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
from tests.test_fuzz import inflate_architecture, mutate  # noqa: E402
from vtcodec.codec import render  # noqa: E402
from vtcodec.decoders import choose  # noqa: E402
from vtcodec.decoders.files import DECODER_KEY, parse_decoder  # noqa: E402
from vtcodec.errors import FormatError, InputError, UnknownModelError  # noqa: E402
from vtcodec.pipeline import read_tokens  # noqa: E402
from vtcodec.registry import CONFIG_KEY  # noqa: E402
from vtcodec.zoo import parse_model  # noqa: E402


def peak_rss() -> int:
    """This process's peak resident memory, bytes."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def weights_case(model_file: bytes, decoder_file: bytes, model, rng: np.random.Generator) -> str:
    """One inflated model or decoder file: 'loaded' or 'refused'; anything else raises."""
    try:
        if rng.random() < 0.5:
            parse_model(inflate_architecture(model_file, CONFIG_KEY, rng))
        else:
            parse_decoder(inflate_architecture(decoder_file, DECODER_KEY, rng), model)
    except (InputError, UnknownModelError):
        return "refused"
    return "loaded"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument(
        "--render-every", type=int, default=50, help="also decode pixels of every Nth valid input (up to 1 MP)"
    )
    parser.add_argument("--weights-every", type=int, default=200, help="every Nth case is an inflated weights file")
    parser.add_argument("--max-rss", type=float, default=3.0, help="GB of peak memory that count as a finding")
    args = parser.parse_args()
    model = vtcodec.load_model(args.model)
    model_file = (Path(args.model) if args.model else vtcodec.zoo.default_weights()).read_bytes()
    decoder = choose(model, None)
    decoder_file = decoder.path.read_bytes() if decoder.path is not None else None
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
        if decoder_file is not None and case % args.weights_every == args.weights_every - 1:
            try:
                outcomes[f"weights {weights_case(model_file, decoder_file, model, rng)}"] += 1
            except Exception as exc:  # a finding
                findings += 1
                print(f"FINDING case {case} (weights file): {type(exc).__name__}: {exc}", flush=True)
            continue
        data = mutate(seeds[case % len(seeds)], rng)
        try:
            stream = read_tokens(data, model)
            ids = stream.ids
            assert ids.shape[0] == stream.header.grid[0] * stream.header.grid[1]
            assert ((ids >= 0) & (ids < model.codebook_size)).all()
            small = stream.header.width * stream.header.height <= 1 << 20  # rendering 4096² takes a minute
            if outcomes["ok"] % args.render_every == 0 and small:
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
        if peak_rss() > args.max_rss * 1e9:
            findings += 1
            print(f"FINDING case {case}: peak RSS {peak_rss() / 1e9:.2f} GB", flush=True)
            break
        if (case + 1) % 5_000 == 0:
            print(f"{case + 1} inputs, {dict(outcomes)}, {findings} findings", flush=True)
    seconds = time.perf_counter() - start
    print(
        f"done: {args.cases} inputs in {seconds:.0f} s ({args.cases / seconds:.0f}/s), {dict(outcomes)}, "
        f"{findings} findings, peak RSS {peak_rss() / 1e9:.2f} GB"
    )
    sys.exit(1 if findings else 0)


if __name__ == "__main__":
    main()
