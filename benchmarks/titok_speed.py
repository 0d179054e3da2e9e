"""vtcodec's TiTok family against the reference code: encode and decode time of one 256² image.

    python benchmarks/titok_speed.py --reference /tmp/ref/odp [--family one-d-piece] [--threads 2]
        [--repeat 3] [--json results/titok-speed.json]

``--reference`` is a checkout of turingmotors/One-D-Piece (or, with ``--family titok``,
bytedance/1d-tokenizer), importable beside this project as ``tests/fixtures/titok/make_fixtures.py``
describes (run this script with that environment's Python). Both models are One-D-Piece S-256
(TiTok S-128) with the same deterministic weights; each step runs ``--repeat`` times, alternating
ours and theirs, and the best time counts. Decoding is timed at all tokens and at a 32-token prefix
(the reference decodes a prefix through its whole pixel decoder as well). Prints the ratios.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "titok"))

from make_fixtures import SMALL_VIT, crops, reference_class  # noqa: E402

from vtcodec.models.deterministic import deterministic_state  # noqa: E402
from vtcodec.models.titok import PRESETS, TiTokTokenizer  # noqa: E402


def seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--family", choices=("one-d-piece", "titok"), default="one-d-piece")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    from omegaconf import OmegaConf

    preset = "one-d-piece-s256" if args.family == "one-d-piece" else "titok-s128"
    k = PRESETS[preset].max_tokens
    vq = {"codebook_size": 4096, "token_size": 12, "use_l2_norm": True, "commitment_cost": 0.25, **SMALL_VIT}
    vq.update(num_latent_tokens=k, finetune_decoder=True, strict_length_assertion=False)
    kind = "odp" if args.family == "one-d-piece" else "titok"
    config = OmegaConf.create({"model": {"vq_model": vq}, "dataset": {"preprocessing": {"crop_size": 256}}})
    theirs = reference_class(args.reference, kind)(config).eval()
    ours = TiTokTokenizer(PRESETS[preset]).eval()
    state = deterministic_state({n: tuple(t.shape) for n, t in ours.state_dict().items()}, 1.0, 0.5)
    ours.load_state_dict(state)
    theirs.load_state_dict(state)
    image = torch.from_numpy(crops(256)[:1])
    ids = ours.encode(image)
    reference_ids = theirs.encode(image)[1]["min_encoding_indices"]
    assert np.array_equal(ids.numpy(), reference_ids[:, 0].numpy()), "the tokens differ"
    lengths = [k, 32] if args.family == "one-d-piece" else [k]
    steps = {"encode": (lambda: ours.encode(image), lambda: theirs.encode(image))}
    for n in lengths:
        keep = torch.tensor([n])
        if args.family == "one-d-piece":
            theirs_decode = lambda n=n: theirs.decode_tokens(reference_ids[:, :, :n], length=n)  # noqa: E731
        else:
            theirs_decode = lambda: theirs.decode_tokens(reference_ids)  # noqa: E731
        steps[f"decode {n} tokens"] = (lambda n=n, keep=keep: ours.decode(ids[:, :n], keep), theirs_decode)
    rows = []
    for name, (mine, reference) in steps.items():
        mine(), reference()  # warm up
        t_ours = t_theirs = float("inf")
        for _ in range(args.repeat):
            t_ours = min(t_ours, seconds(mine))
            t_theirs = min(t_theirs, seconds(reference))
        rows.append({"step": name, "ours_s": t_ours, "reference_s": t_theirs, "ratio": t_ours / t_theirs})
        ratio = t_ours / t_theirs
        print(f"{preset} {name}: ours {t_ours:.3f} s, reference {t_theirs:.3f} s, ours/reference {ratio:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        record = {"preset": preset, "threads": args.threads, "repeat": args.repeat, "rows": rows}
        args.json.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
