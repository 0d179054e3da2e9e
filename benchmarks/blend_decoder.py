"""Write one decoder file whose weights are a blend of two decoders of the default model.

    python benchmarks/blend_decoder.py FIDELITY REALISM WEIGHT OUT [--name perceptual] [--weights int8]
    python benchmarks/blend_decoder.py BLEND OLD_BASE SHARE OUT --onto NEW_BASE [--onto-model FILE]

FIDELITY and REALISM are decoder names or files of one token space (``--model``, else the default);
the result holds ``(1 - WEIGHT) * FIDELITY + WEIGHT * REALISM`` (``vtcodec.decoders.blend``,
what ``--realism WEIGHT`` computes at decode time) under the name ``--name``. Use it to
fix a point of the realism path as a decoder of its own, then score it with
``benchmarks/decoder_eval.py`` like any other decoder file.

With ``--onto``, BLEND is such a point, made as ``SHARE * OLD_BASE + (1 - SHARE) * R``, and
the result is ``BLEND + SHARE * (NEW_BASE - OLD_BASE)`` = ``SHARE * NEW_BASE + (1 - SHARE) * R``:
the same point moved onto a retrained fidelity decoder, without R's weights
(``vtcodec.decoders.carry_blend``; NEW_BASE may also be OLD_BASE grown by added blocks).
NEW_BASE may decode another token space (``--onto-model``), one fine-tuned from the first
with its encoder; SHARE 1 then carries BLEND's whole difference from OLD_BASE onto it.
"""

from __future__ import annotations

import argparse

import vtcodec
from vtcodec.decoders import blend, carry_blend, load_decoder
from vtcodec.decoders.files import save_decoder
from vtcodec.errors import InputError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("fidelity")
    parser.add_argument("realism")
    parser.add_argument("weight", type=float)
    parser.add_argument("out")
    parser.add_argument("--name", default="perceptual")
    parser.add_argument("--weights", choices=["int8", "fp16"], default="int8")
    parser.add_argument("--onto", help="move the blend FIDELITY (made on base REALISM) onto this base")
    parser.add_argument("--model", help="the token-space file of FIDELITY and REALISM (default: the default model)")
    parser.add_argument("--onto-model", help="the token-space file of --onto (default: --model)")
    args = parser.parse_args()
    model = vtcodec.load_model(args.model)
    target = vtcodec.load_model(args.onto_model) if args.onto_model else model
    try:
        fidelity, realism = (load_decoder(model, name, precision="float32") for name in (args.fidelity, args.realism))
        if args.onto:
            mixed = carry_blend(fidelity, realism, load_decoder(target, args.onto, precision="float32"), args.weight)
            space = f" of {target.model_id.hex()}" if target is not model else ""
            recipe = f"{fidelity.name} + {args.weight:g} x ({args.onto}{space} - {realism.name})"
        else:
            mixed = blend(fidelity, realism, args.weight)
            recipe = f"{1 - args.weight:g} x {fidelity.name} + {args.weight:g} x {realism.name}"
    except InputError as exc:
        raise SystemExit(f"error: {exc}") from None
    digest = save_decoder(
        mixed.network, args.name, mixed.token_space, args.out, mixed.context, mixed.grid_from, args.weights
    )
    print(f"wrote {args.out}: {args.name!r} = {recipe}")
    print(f"SHA-256 {digest}")


if __name__ == "__main__":
    main()
