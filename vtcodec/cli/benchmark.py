"""``vtcodec bench``: rate-quality against JPEG, WebP and AVIF at equal bytes (``vtcodec.bench``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from vtcodec.cli.common import (
    ModelOption,
    QuietOption,
    at_least,
    command,
)
from vtcodec.errors import InputError, UsageError
from vtcodec.imageio import IMAGE_SUFFIXES


@command()
def bench(
    images_dir: Annotated[Path, typer.Argument(metavar="DIR", help="Folder of images (e.g. ../shared/data/kodak).")],
    out: Annotated[
        Path, typer.Option("--out", metavar="DIR", help="Results folder: JSON, CSV, plots, BD-rate, crops.")
    ],
    codecs: Annotated[
        str, typer.Option("--codecs", metavar="LIST", help="Comma-separated: vtcodec,jpeg,webp,avif.")
    ] = ("vtcodec,jpeg,webp,avif"),
    points: Annotated[
        int, typer.Option("--points", metavar="N", callback=at_least(1), help="vtcodec token counts to measure.")
    ] = 5,
    token_list: Annotated[
        Optional[str],
        typer.Option("--tokens", metavar="LIST", help="Comma-separated token counts to measure (instead of --points)."),
    ] = None,
    limit: Annotated[
        Optional[int], typer.Option("--limit", metavar="N", callback=at_least(1), help="Only the first N images.")
    ] = None,
    per_image: Annotated[bool, typer.Option("--per-image", help="Also one curve per image in results.json.")] = False,
    model: ModelOption = None,
    decoder: Annotated[
        Optional[str],
        typer.Option(
            "--decoder",
            metavar="LIST",
            help="Decoders to bench on the same files, comma-separated (names or decoder files); "
            "default: the model's default. The first is reported as vtcodec, the others as vtcodec-NAME.",
        ),
    ] = None,
    quiet: QuietOption = False,
    metric_list: Annotated[
        Optional[str],
        typer.Option(
            "--metrics",
            metavar="LIST",
            help="Comma-separated: psnr-rgb, ms-ssim, haarpsi, ssimulacra2 [default: every installed one].",
        ),
    ] = None,
) -> None:
    """Rate-quality comparison with JPEG, WebP and AVIF at equal bytes, with plots and BD-rates."""
    from vtcodec import bench as benchmark  # torch (start-up time)
    from vtcodec.zoo import load_model  # torch (start-up time)

    metric_names = [m.strip().lower() for m in metric_list.split(",") if m.strip()] if metric_list else None
    benchmark.Metrics(metric_names)  # an unknown metric fails here, before any image is read

    chosen = [c.strip().lower() for c in codecs.split(",") if c.strip()]
    unknown = sorted(set(chosen) - {"vtcodec", "jpeg", "webp", "avif"})
    if unknown or "vtcodec" not in chosen:
        raise UsageError(f"--codecs must include vtcodec and may add jpeg, webp, avif (got {codecs!r})")
    if not images_dir.is_dir():
        raise InputError(f"{images_dir}: not a folder")
    files = [p for p in sorted(images_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES][:limit]
    if not files:
        raise InputError(f"{images_dir}: no images")
    loaded = load_model(model, "cpu")
    chosen_decoders = [d.strip() for d in decoder.split(",") if d.strip()] if decoder else [None]
    ladder = [n for n in benchmark.TOKEN_LADDER if n <= loaded.config.max_tokens]
    picks = sorted({ladder[round(i * (len(ladder) - 1) / max(points - 1, 1))] for i in range(points)})
    if token_list:
        try:
            picks = sorted({int(t) for t in token_list.split(",") if t.strip()})
        except ValueError:
            raise InputError(f"--tokens takes comma-separated integers (got {token_list!r})") from None
        if not picks or picks[0] < 1 or picks[-1] > loaded.config.max_tokens:
            raise InputError(f"--tokens must lie in 1 ... {loaded.config.max_tokens}")
    result = benchmark.run_bench(
        files,
        out,
        loaded,
        chosen,
        picks,
        per_image=per_image,
        quiet=quiet,
        decoders=chosen_decoders,
        metric_names=metric_names,
    )
    typer.echo(result["table"])
    typer.echo("")
    typer.echo(result["bd_table"])
    for note in result["notes"]:
        typer.echo(f"note: {note}", err=True)
    typer.echo(f"{len(files)} images in {result['seconds']:.0f} s; results in {out}", err=True)
