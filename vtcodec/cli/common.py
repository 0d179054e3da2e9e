"""The command line's shared parts: the typer app, its options, and the entry point (errors become one line)."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer

from vtcodec import batch, registry
from vtcodec.errors import FormatError, InputError, UsageError, VtcodecError, VtcodecWarning

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
ModelDirOption = Annotated[
    Optional[list[Path]],
    typer.Option(
        "--model-dir",
        help="Folder of models that are not shipped (earlier models' files); also $VTCODEC_MODEL_DIR.",
    ),
]
ForceOption = Annotated[bool, typer.Option("--force", "-f", help="Overwrite an existing output.")]
DecoderOption = Annotated[
    Optional[str],
    typer.Option(
        "--decoder",
        help="Decoder name (see `vtcodec info FILE`) or a decoder file; default: the best one for the file's model.",
    ),
]


DeviceOption = Annotated[str, typer.Option("--device", help="auto (CUDA when present), cpu or cuda.")]
BatchSizeOption = Annotated[int, typer.Option("--batch-size", min=1, help="Tiles per forward pass (many inputs).")]
JobsOption = Annotated[int, typer.Option("--jobs", "-j", min=1, help="Threads that read and write files.")]
ManifestOption = Annotated[
    Optional[Path], typer.Option("--manifest", help="Append one JSON line per file (many inputs).")
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
VerboseOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="Also print what libraries (Pillow, libtiff) warned about.")
]
MinutesOption = Annotated[float, typer.Option("--minutes", min=0.0, help="Wall-time budget of the run.")]
StepsOption = Annotated[Optional[int], typer.Option("--steps", min=1, help="Also stop after N steps in all.")]
ResumeOption = Annotated[bool, typer.Option("--resume", help="Continue from RUN/last.ckpt.")]
ExportOnlyOption = Annotated[bool, typer.Option("--export-only", help="No training: export RUN/last.ckpt.")]
MaxPixelsOption = Annotated[
    Optional[int],
    typer.Option(
        "--max-pixels", min=0, help="Refuse images and .vtk files of more pixels [default: 67108864]; 0: no limit."
    ),
]


def _print_version(value: bool) -> None:
    if value:
        from vtcodec import __version__

        typer.echo(f"vtcodec {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """vtcodec: a learned very-low-bitrate image codec (.vtk files)."""


@contextlib.contextmanager
def naming(path: Path) -> Iterator[None]:
    """An error about the input ``path`` names it, as batch runs do (unless its message already does)."""
    try:
        yield
    except VtcodecError as exc:
        if isinstance(exc, UsageError) or str(path) in str(exc):
            raise
        raise type(exc)(f"{path}: {exc}") from None


def add_model_dirs(folders: Optional[list[Path]]) -> None:
    for folder in folders or []:
        registry.add_model_dir(folder)


def set_pixel_limit(max_pixels: Optional[int]) -> None:
    """``--max-pixels``: vtcodec's limit (``vtcodec.MAX_PIXELS``), and Pillow's bomb check no stricter."""
    if max_pixels is not None:
        from PIL import Image

        import vtcodec

        vtcodec.MAX_PIXELS = None if max_pixels == 0 else max_pixels
        Image.MAX_IMAGE_PIXELS = None if max_pixels == 0 else max(Image.MAX_IMAGE_PIXELS or 0, max_pixels)


def is_batch(inputs: list[str], output: Optional[Path], manifest: Optional[Path]) -> bool:
    """One existing file and no output folder means single-file mode; anything else is a batch."""
    if len(inputs) != 1 or not Path(inputs[0]).is_file() or manifest is not None:
        return True
    return output is not None and (output.is_dir() or str(output).endswith(("/", os.sep)))


def batch_output_dir(output: Optional[Path]) -> Optional[Path]:
    if output is not None and output.exists() and not output.is_dir():
        raise InputError(f"{output}: with several inputs, -o must be a folder")
    return output


def report(summary: batch.Summary, rank: int, world: int) -> None:
    done = summary.converted
    rate = done / summary.seconds if summary.seconds > 0 else 0.0
    where = f"rank {rank}/{world}: " if world > 1 else ""
    typer.echo(
        f"{where}{done} converted, {summary.skipped} skipped (already done), {len(summary.failed)} failed "
        f"in {summary.seconds:.1f} s ({rate:.2f} images/s, {summary.bytes_in / max(summary.seconds, 1e-9) / 1e6:.2f} "
        "MB/s in)",
        err=True,
    )
    if summary.failed:
        for _, message in summary.failed[:20]:
            typer.echo(f"  failed: {message}", err=True)
        raise typer.Exit(1)


_library_warnings: list[str] = []  # what libraries said during the command; printed with --verbose
_verbose = False


def set_verbose(verbose: bool) -> None:
    """``--verbose``: also print what libraries (Pillow, libtiff) warned about."""
    global _verbose
    _verbose = verbose


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """vtcodec's own warnings as one line on stderr; libraries' are kept for ``--verbose``."""
    if issubclass(category, VtcodecWarning):
        print(f"vtcodec: warning: {message}", file=sys.stderr)
    else:
        _library_warnings.append(f"{category.__name__}: {' '.join(str(message).split())}")


def _print_library_warnings() -> None:
    if _verbose:
        for text in _library_warnings:
            print(f"vtcodec: library warning: {text}", file=sys.stderr)
    _library_warnings.clear()


def main() -> None:
    """Console entry point: errors become one line on stderr and a non-zero exit code."""
    warnings.showwarning = _show_warning
    set_verbose(False)
    _library_warnings.clear()
    try:
        result = _run_app()
    finally:
        _print_library_warnings()
    sys.exit(result)


def _run_app() -> int:
    """Run the command; every error becomes one line on stderr and an exit code."""
    try:
        result = app(standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # usage errors: bad options and arguments
        if type(exc).__name__ == "NoArgsIsHelpError":
            print(exc.format_message(), file=sys.stderr)
        else:
            print(f"vtcodec: error: {exc.format_message()}", file=sys.stderr)
        return 2
    except (typer.Abort, KeyboardInterrupt):
        print("vtcodec: interrupted", file=sys.stderr)
        return 130
    except FormatError as exc:
        print(f"vtcodec: error: {exc}", file=sys.stderr)
        return 3
    except UsageError as exc:
        print(f"vtcodec: error: {exc}", file=sys.stderr)
        return 2
    except VtcodecError as exc:
        print(f"vtcodec: error: {exc}", file=sys.stderr)
        return 1
    return result if isinstance(result, int) else 0
