"""``vtcodec train``, ``train-decoder`` and ``tokens``: training runs and token datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vtcodec.cli.common import (
    ExportOnlyOption,
    MinutesOption,
    ModelOption,
    QuietOption,
    ResumeOption,
    RunOption,
    StepsOption,
    ValOption,
    VerboseOption,
    at_least,
    command,
    set_verbose,
)


@command()
def train(
    data: Annotated[list[Path], typer.Argument(metavar="DIR", help="Folders of training images.")],
    out: RunOption,
    val: ValOption = None,
    config: Annotated[
        Optional[Path], typer.Option("--config", metavar="FILE", help="JSON with 'model' and 'train' sections.")
    ] = None,
    minutes: MinutesOption = 60.0,
    steps: StepsOption = None,
    resume: ResumeOption = False,
    init: Annotated[
        Optional[Path], typer.Option("--init", metavar="FILE", help="Start from a model file (e.g. the shipped one).")
    ] = None,
    refit: Annotated[
        Optional[Path],
        typer.Option(
            "--refit", metavar="FILE", help="No training: fit the priors again for this model file's weights."
        ),
    ] = None,
    export_only: ExportOnlyOption = False,
    prior_tiles: Annotated[
        int,
        typer.Option("--prior-tiles", metavar="N", callback=at_least(1), help="Training tiles to fit the priors on."),
    ] = 16384,
) -> None:
    """Train a tokenizer, then fit its priors and export RUN/model.safetensors.

    Runs unchanged under torchrun (DDP: gloo on CPU, NCCL on CUDA); each rank reads its own shard of the images.
    """
    from vtcodec.training import run_tokenizer  # torch (start-up time)

    path = run_tokenizer(
        [str(p) for p in data],
        str(out),
        str(val) if val else None,
        str(config) if config else None,
        minutes,
        steps,
        resume,
        str(init) if init else None,
        str(refit) if refit else None,
        export_only,
        prior_tiles,
    )
    if path is not None:  # rank 0 exports
        from vtcodec.zoo import load_model  # torch (start-up time)

        typer.echo(f"exported {path} (model id {load_model(path).model_id.hex()})", err=True)


@command("tokens")
def tokens_command(
    inputs: Annotated[
        list[str],
        typer.Argument(metavar="INPUT", help=".vtk files or images: files, folders (recursive), quoted globs."),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", metavar="DIR", help="Folder for the token shards.")],
    tokens: Annotated[
        Optional[int],
        typer.Option(
            "--tokens",
            "-t",
            metavar="N",
            callback=at_least(0),
            help="Keep at most N tokens per tile (images: encode with N [64]).",
        ),
    ] = None,
    shard_size: Annotated[
        int, typer.Option("--shard-size", metavar="N", callback=at_least(1), help="Samples per shard (one .npy file).")
    ] = 1000,
    force: Annotated[bool, typer.Option("--force", "-f", help="Rewrite complete shards too.")] = False,
    model: ModelOption = None,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Export tokens for ML training: shards of one .npy token array and one .json index each.

    A rerun resumes: complete shards are kept, the rest are rewritten. Read them with
    vtcodec.datasets.TokenShards; the layout is in vtcodec/datasets/shards.py.
    """
    from vtcodec.datasets import shards  # torch (start-up time)
    from vtcodec.zoo import load_model  # torch (start-up time)

    set_verbose(verbose)
    loaded = load_model(model) if model else None
    summary = shards.export_shards(
        inputs,
        output,
        model=loaded,
        tokens=tokens,
        shard_size=shard_size,
        force=force,
        quiet=quiet,
        report=lambda message: typer.echo(f"vtcodec: error: {message}", err=True),
    )
    typer.echo(
        f"{summary.samples} samples in {output} ({summary.bytes_out} bytes; "
        f"{summary.skipped_shards} complete shards kept, {len(summary.failed)} files failed)",
        err=True,
    )
    if summary.failed:
        raise typer.Exit(1)


@command("train-decoder")
def train_decoder(
    data: Annotated[list[Path], typer.Argument(metavar="DIR", help="Folders of training images.")],
    init: Annotated[
        Path, typer.Option("--init", metavar="FILE", help="Model file whose token space the decoder serves.")
    ],
    out: RunOption,
    val: ValOption = None,
    config: Annotated[
        Optional[Path], typer.Option("--config", metavar="FILE", help="JSON with a 'decoder_train' section.")
    ] = None,
    minutes: MinutesOption = 60.0,
    steps: StepsOption = None,
    resume: ResumeOption = False,
    init_decoder: Annotated[
        Optional[str],
        typer.Option("--init-decoder", metavar="NAME|FILE", help="Start from this decoder of the model."),
    ] = None,
    perceptual_weights: Annotated[
        Optional[Path],
        typer.Option(
            "--perceptual-weights", metavar="WHEEL", help="The stlpips-pytorch 0.0.2 wheel, for the 'perceptual' loss."
        ),
    ] = None,
    name: Annotated[str, typer.Option("--name", metavar="NAME", help="The decoder's name in the registry.")] = "grid",
    export_only: ExportOnlyOption = False,
    weights: Annotated[
        str,
        typer.Option(
            "--weights", metavar="int8|fp16", help="How the decoder file stores its weights (int8: half the bytes)."
        ),
    ] = "int8",
) -> None:
    """Train a whole-grid decoder for a model's token space (encoder frozen), export RUN/decoder.safetensors.

    Every file made with the model decodes with the result: `vtcodec decode FILE --decoder RUN/decoder.safetensors`.
    """
    from vtcodec.training import run_decoder  # torch (start-up time)

    path, digest = run_decoder(
        [str(p) for p in data],
        str(out),
        str(init),
        str(val) if val else None,
        str(config) if config else None,
        minutes,
        steps,
        resume,
        init_decoder,
        str(perceptual_weights) if perceptual_weights else None,
        name,
        export_only,
        weights,
    )
    typer.echo(f"exported {path} (decoder {name!r}, SHA-256 {digest[:16]})", err=True)
