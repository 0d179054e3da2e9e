"""The ``vtcodec`` command line: a thin layer over the Python API."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from vtcodec import codec, container
from vtcodec.errors import FormatError, InputError, UnknownModelError, VtcodecError
from vtcodec.fileio import check_writable, read_input, write_atomic
from vtcodec.imageio import open_image
from vtcodec.zoo import find_model

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="vtcodec: a learned very-low-bitrate image codec (.vtk files).",
)

ModelOption = Annotated[
    Optional[Path], typer.Option("--model", help="Model file (.safetensors); default: the shipped model.")
]
ForceOption = Annotated[bool, typer.Option("--force", "-f", help="Overwrite an existing output.")]


@app.command()
def encode(
    image: Annotated[Path, typer.Argument(help="Input image (any format Pillow reads).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Output .vtk [default: IMAGE.vtk].")] = None,
    tokens: Annotated[
        Optional[int], typer.Option("--tokens", "-t", min=0, help=f"Tokens per tile [default: {codec.DEFAULT_TOKENS}].")
    ] = None,
    max_bytes: Annotated[
        Optional[int], typer.Option("--bytes", min=1, help="Whole-file budget in bytes (rate-distortion allocation).")
    ] = None,
    bpp: Annotated[Optional[float], typer.Option("--bpp", min=0.0, help="Budget in bits per pixel.")] = None,
    psnr: Annotated[Optional[float], typer.Option("--psnr", help="Smallest file with PSNR-RGB >= this (dB).")] = None,
    force: ForceOption = False,
    model: ModelOption = None,
) -> None:
    """Compress an image into a .vtk file (one target: --tokens, --bytes, --bpp or --psnr)."""
    out = output or image.with_suffix(".vtk")
    check_writable(out, force)
    pixels = open_image(image)
    result = codec.encode(pixels, tokens, max_bytes=max_bytes, bpp=bpp, psnr=psnr, model=model)
    write_atomic(out, result.data, force=force)
    size = len(result.data)
    summary = (
        f"{out}: {size} bytes, {8 * size / (pixels.width * pixels.height):.4f} bpp, {pixels.width}x{pixels.height}"
    )
    if result.psnr is not None:
        summary += f", {result.psnr:.2f} dB"
    typer.echo(summary, err=True)
    if not result.target_met:
        typer.echo(f"vtcodec: warning: {psnr} dB is out of reach; wrote the best file (all tokens)", err=True)


@app.command()
def decode(
    file: Annotated[Path, typer.Argument(help="Input .vtk file.")],
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Output image (default: FILE.decoded.png).")
    ] = None,
    tokens: Annotated[
        Optional[int], typer.Option("--tokens", "-t", min=0, help="Decode only the first N tokens of each tile.")
    ] = None,
    force: ForceOption = False,
    model: ModelOption = None,
) -> None:
    """Decompress a .vtk file into an image (format from the output suffix)."""
    out = output or file.with_name(file.stem + ".decoded.png")
    check_writable(out, force)
    image = codec.decompress(read_input(file), tokens=tokens, model=model)
    buffer = io.BytesIO()
    try:
        image.save(buffer, format=_format_for(out))
    except (KeyError, ValueError, OSError) as exc:
        raise InputError(f"{out}: cannot write this image format ({exc})") from None
    write_atomic(out, buffer.getvalue(), force=force)
    typer.echo(f"{out}: {image.width}x{image.height}", err=True)


def _format_for(path: Path) -> str:
    from PIL import Image

    Image.init()
    fmt = Image.EXTENSION.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: unknown image suffix {path.suffix!r} (try .png)")
    return fmt


@app.command()
def info(
    file: Annotated[Path, typer.Argument(help="A .vtk file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    model: ModelOption = None,
) -> None:
    """Describe a .vtk file without decoding its pixels."""
    data = read_input(file)
    header, _ = container.unpack(data)
    try:
        codebook = find_model(header.model_id, [model] if model else []).codebook_size
    except UnknownModelError:
        codebook = None
    record = {
        "width": header.width,
        "height": header.height,
        "bytes": len(data),
        "bpp": 8 * len(data) / (header.width * header.height),
        "tile_size": header.tile_size,
        "grid": list(header.grid),
        "tokens_per_tile": [int(c) for c in header.token_counts],
        "codebook_size": codebook,
        "coder": header.coder.name.lower(),
        "model_id": header.model_id.hex(),
        "format_version": header.version,
    }
    if as_json:
        typer.echo(json.dumps(record))
        return
    counts = header.token_counts
    tokens = f"{int(counts.min())}" if counts.min() == counts.max() else f"{int(counts.min())}..{int(counts.max())}"
    typer.echo(
        f"{file}: {header.width}x{header.height}, {len(data)} bytes, {record['bpp']:.4f} bpp, "
        f"{header.grid[0]}x{header.grid[1]} tiles of {header.tile_size}, {tokens} tokens/tile, "
        f"coder {record['coder']}, model {record['model_id']}, format v{header.version}"
    )


@app.command()
def truncate(
    file: Annotated[Path, typer.Argument(help="Input .vtk file.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .vtk file.")],
    max_bytes: Annotated[Optional[int], typer.Option("--bytes", min=1, help="Whole-file budget in bytes.")] = None,
    tokens: Annotated[
        Optional[int], typer.Option("--tokens", "-t", min=0, help="Keep at most N tokens per tile.")
    ] = None,
    force: ForceOption = False,
    model: ModelOption = None,
) -> None:
    """Write a smaller .vtk holding a prefix of each tile's tokens (no re-encoding, no network)."""
    check_writable(output, force)
    data = codec.truncate(read_input(file), tokens=tokens, max_bytes=max_bytes, model=model)
    write_atomic(output, data, force=force)
    typer.echo(f"{output}: {len(data)} bytes", err=True)


@app.command()
def train(
    data: Annotated[list[Path], typer.Argument(help="Folders of training images.")],
    out: Annotated[Path, typer.Option("--out", help="Run folder: checkpoints, log, exported model.")],
    val: Annotated[Optional[Path], typer.Option("--val", help="Held-out folder for periodic evaluation.")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="JSON with 'model' and 'train' sections.")] = None,
    minutes: Annotated[float, typer.Option("--minutes", min=0.0, help="Wall-time budget of the run.")] = 60.0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from RUN/last.ckpt.")] = False,
    init: Annotated[
        Optional[Path], typer.Option("--init", help="Start from a model file (e.g. the shipped one).")
    ] = None,
) -> None:
    """Train a tokenizer, then fit its prior and export RUN/model.safetensors."""
    from vtcodec import train as training

    args = [str(p) for p in data] + ["--out", str(out), "--minutes", str(minutes)]
    args += ["--val", str(val)] if val else []
    args += ["--config", str(config)] if config else []
    args += ["--resume"] if resume else []
    args += ["--init", str(init)] if init else []
    training.main(args)


def main() -> None:
    """Console entry point: errors become one line on stderr and a non-zero exit code."""
    try:
        result = app(standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors: bad options and arguments
        if type(exc).__name__ == "NoArgsIsHelpError":
            print(exc.format_message(), file=sys.stderr)
        else:
            print(f"vtcodec: error: {exc.format_message()}", file=sys.stderr)
        sys.exit(2)
    except typer.Abort:
        print("vtcodec: interrupted", file=sys.stderr)
        sys.exit(130)
    except FormatError as exc:
        print(f"vtcodec: error: {exc}", file=sys.stderr)
        sys.exit(3)
    except VtcodecError as exc:
        print(f"vtcodec: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("vtcodec: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(result if isinstance(result, int) else 0)
