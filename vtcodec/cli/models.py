"""``vtcodec model import`` and ``vtcodec model list``: models that users bring."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vtcodec.cli.common import Command, DeviceOption, ForceOption, add_model_dirs, app, at_least

model_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Models that users bring: import a TiTok or One-D-Piece checkpoint, list imported models.",
)
app.add_typer(model_app, name="model")


@model_app.command("import", cls=Command)
def import_(
    family: Annotated[str, typer.Argument(metavar="FAMILY", help="one-d-piece or titok.", show_default=False)],
    source: Annotated[
        Path,
        typer.Argument(
            metavar="PATH",
            help="A checkpoint: a folder (config.json + model.safetensors or pytorch_model.bin) or a weights file.",
            show_default=False,
        ),
    ],
    name: Annotated[str, typer.Option("--name", metavar="NAME", help="The model's name (--model NAME).")],
    fit_on: Annotated[
        list[Path], typer.Option("--fit-on", metavar="DIR", help="Images to fit the prior on (repeatable).")
    ],
    preset: Annotated[
        Optional[str],
        typer.Option(
            "--preset",
            metavar="NAME",
            help="The published config, for weights without one: one-d-piece-s256|b256|l256, titok-l32|b64|s128.",
        ),
    ] = None,
    config: Annotated[
        Optional[Path], typer.Option("--config", metavar="FILE", help="The config as JSON (TiTok's config.json).")
    ] = None,
    pixel_decoder: Annotated[
        Optional[Path],
        typer.Option(
            "--pixel-decoder",
            metavar="FILE",
            help="MaskGIT-VQGAN's weights, for a checkpoint without pixel_* tensors.",
        ),
    ] = None,
    model_dir: Annotated[
        Optional[Path],
        typer.Option("--model-dir", metavar="DIR", help="Write it here [default: $VTCODEC_MODEL_DIR, else ~/.cache]."),
    ] = None,
    limit: Annotated[
        Optional[int], typer.Option("--limit", metavar="N", callback=at_least(1), help="Fit on the first N images.")
    ] = None,
    device: DeviceOption = "auto",
    force: ForceOption = False,
) -> None:
    """Import a TiTok or One-D-Piece checkpoint: its weights, a prior fitted on your images, a name and an id."""
    from vtcodec.importer import import_model  # torch (start-up time)
    from vtcodec.zoo import resolve_device

    result = import_model(
        source, family, name, fit_on, model_dir, preset, config, pixel_decoder, limit, force,
        str(resolve_device(device)),
    )  # fmt: skip
    typer.echo(
        f"imported {result.name} ({result.model_id.hex()}) into {result.path}\n"
        f"prior fitted on {result.tiles} tiles of {result.images} images; on "
        f"{result.held_out_tiles} held-out tiles: {result.prior_bits:.3f} bits per token "
        f"(raw {result.raw_bits:.0f}; previous-token context, measured only: {result.context_bits:.3f})"
    )


@model_app.command("list", cls=Command)
def list_(
    model_dir: Annotated[
        Optional[list[Path]], typer.Option("--model-dir", metavar="DIR", help="Also search this folder.")
    ] = None,
) -> None:
    """List the models imported into the model folders: name, model id, file."""
    from vtcodec import registry

    add_model_dirs(model_dir)
    found = registry.imported_models()
    for name, model_id, path in found:
        typer.echo(f"{name}\t{model_id.hex()}\t{path}")
    if not found:
        typer.echo(f"no imported models in {', '.join(str(d) for d in registry.model_dirs())}", err=True)
