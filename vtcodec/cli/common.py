"""The command line's shared parts: the typer app, its options, and the entry point (errors become one line)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer
from PIL import Image

import vtcodec
from vtcodec import __version__, registry
from vtcodec.errors import FormatError, InputError, UsageError, VtcodecError, VtcodecWarning
from vtcodec.jobs import Summary, throughput

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="vtcodec: a learned very-low-bitrate image codec (.vtk files).",
)


class Command(typer.core.TyperCommand):
    """A command whose help names arguments as ``IMAGE...``, without typer's ``{images}`` and ``<list[str]>``."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        return [piece.replace("{", "").replace("}", "") for piece in super().collect_usage_pieces(ctx)]

    def format_options(self, ctx, formatter) -> None:
        params = self.get_params(ctx)
        arguments = [
            (f"{p.metavar or p.name.upper()}{'...' if p.nargs != 1 else ''}", p.help or "")
            for p in params
            if p.param_type_name == "argument"
        ]
        options = [r for p in params if p.param_type_name == "option" and (r := p.get_help_record(ctx)) is not None]
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def command(name: str | None = None):
    """Register a command on :data:`app` (as ``@app.command``, with vtcodec's usage line)."""
    return app.command(name, cls=Command)


def at_least(low: float):
    """An option callback: the value, if given, is at least ``low`` (else a usage error, exit 2)."""

    def check(value):
        if value is not None and value < low:
            raise typer.BadParameter(f"must be {low} or more, not {value}")
        return value

    return check


def between(low: float, high: float):
    """An option callback: the value, if given, lies in ``low … high`` (else a usage error, exit 2)."""

    def check(value):
        if value is not None and not low <= value <= high:
            raise typer.BadParameter(f"must be {low} … {high}, not {value}")
        return value

    return check


ModelOption = Annotated[
    Optional[Path],
    typer.Option(
        "--model",
        metavar="FILE|NAME",
        help="Model file (.safetensors) or an imported model's name [default: the shipped model].",
    ),
]
ModelDirOption = Annotated[
    Optional[list[Path]],
    typer.Option(
        "--model-dir",
        metavar="DIR",
        help="Folder of models that are not shipped (earlier models' files); also $VTCODEC_MODEL_DIR.",
    ),
]
ForceOption = Annotated[bool, typer.Option("--force", "-f", help="Overwrite an existing output.")]
DecoderOption = Annotated[
    Optional[str],
    typer.Option(
        "--decoder",
        metavar="NAME|FILE",
        help="Decoder name (see `vtcodec info FILE`) or decoder file [default: the best one for the file's model].",
    ),
]
DeviceOption = Annotated[
    str, typer.Option("--device", metavar="auto|cpu|cuda", help="Where the networks run; auto: CUDA when present.")
]
BatchSizeOption = Annotated[
    int,
    typer.Option("--batch-size", metavar="N", callback=at_least(1), help="Tiles per forward pass, 1 or more."),
]
JobsOption = Annotated[
    int, typer.Option("--jobs", "-j", metavar="N", callback=at_least(1), help="Threads that read and write files.")
]
ManifestOption = Annotated[
    Optional[Path], typer.Option("--manifest", metavar="FILE", help="Append one JSON line per file (many inputs).")
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-Q", help="No progress bar.")]
VerboseOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="Also print what libraries (Pillow, libtiff) warned about.")
]
MinutesOption = Annotated[
    float, typer.Option("--minutes", metavar="M", callback=at_least(0.0), help="Wall-time budget of the run.")
]
StepsOption = Annotated[
    Optional[int], typer.Option("--steps", metavar="N", callback=at_least(1), help="Also stop after N steps in all.")
]
ResumeOption = Annotated[bool, typer.Option("--resume", help="Continue from RUN/last.ckpt.")]
ExportOnlyOption = Annotated[bool, typer.Option("--export-only", help="No training: export RUN/last.ckpt.")]
MaxPixelsOption = Annotated[
    Optional[int],
    typer.Option(
        "--max-pixels",
        metavar="N",
        callback=at_least(0),
        help="Refuse images and .vtk files of more pixels [default: 67108864]; 0: no limit.",
    ),
]
RunOption = Annotated[Path, typer.Option("--out", metavar="DIR", help="Run folder: checkpoints, log, exports.")]
ValOption = Annotated[
    Optional[Path], typer.Option("--val", metavar="DIR", help="Held-out images for periodic evaluation.")
]


def _print_version(value: bool) -> None:
    if value:
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


def report(summary: Summary, rank: int, world: int) -> None:
    done = summary.converted
    rate = done / summary.seconds if summary.seconds > 0 else 0.0
    where = f"rank {rank}/{world}: " if world > 1 else ""
    typer.echo(
        f"{where}{done} converted, {summary.skipped} skipped (already done), {len(summary.failed)} failed "
        f"in {summary.seconds:.1f} s ({rate:.2f} images/s, {throughput(summary.bytes_in, summary.seconds)} in, "
        f"{throughput(summary.bytes_out, summary.seconds)} out)",
        err=True,
    )
    if summary.failed:
        for _, message in summary.failed[:20]:
            typer.echo(f"  failed: {message}", err=True)
        raise typer.Exit(1)


_library_warnings: list[str] = []  # what libraries said during the command; printed with --verbose
_verbose = False


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)


def return_large_blocks() -> bool:
    """Have the C library's malloc hand every block of 128 KiB or more back to the system when it is
    freed; True where it did (Linux with glibc), else a no-op.

    By default glibc raises that threshold as large blocks are freed, so a decode's short-lived tensors
    come from the heap and their fragments stay resident: a 768x512 decode peaks at 364 MB against 329
    with the threshold fixed, 6 % slower; 3072x2048 at 638 against 453 MB, 17 % slower (pages touched
    afresh; ``benchmarks/probes/decode_allocator.py``). For commands that decode one image; a batch
    reuses its heap from image to image.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, 128 * 1024))


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
