"""Write one decoder file whose weights are a blend of two decoders of the default model.

    python benchmarks/blend_decoder.py FIDELITY REALISM WEIGHT OUT [--name perceptual] [--weights int8]

FIDELITY and REALISM are decoder names or files of the default model's token space;
the result holds ``(1 - WEIGHT) * FIDELITY + WEIGHT * REALISM`` (``vtcodec.decoders.blend``,
what ``--realism WEIGHT`` computes at decode time) under the name ``--name``. Use it to
fix a point of the realism path as a decoder of its own, then score it with
``benchmarks/decoder_eval.py`` like any other decoder file.
"""

from __future__ import annotations

import argparse

import vtcodec
from vtcodec.decoder_files import save_decoder
from vtcodec.decoders import blend, load_decoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("fidelity")
    parser.add_argument("realism")
    parser.add_argument("weight", type=float)
    parser.add_argument("out")
    parser.add_argument("--name", default="perceptual")
    parser.add_argument("--weights", choices=["int8", "fp16"], default="int8")
    args = parser.parse_args()
    model = vtcodec.load_model()
    fidelity, realism = load_decoder(model, args.fidelity), load_decoder(model, args.realism)
    mixed = blend(fidelity, realism, args.weight)
    digest = save_decoder(
        mixed.network, args.name, model.model_id, args.out, mixed.context, mixed.grid_from, args.weights
    )
    print(f"wrote {args.out}: {args.name!r} = {1 - args.weight:g} x {fidelity.name} + {args.weight:g} x {realism.name}")
    print(f"SHA-256 {digest}")


if __name__ == "__main__":
    main()
