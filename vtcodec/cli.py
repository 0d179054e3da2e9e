"""The ``vtcodec`` command line: a thin layer over the Python API."""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer

from vtcodec import batch, codec, container, registry
from vtcodec.decoders import decoder_names
from vtcodec.errors import FormatError, InputError, UnknownModelError, VtcodecError, VtcodecWarning
from vtcodec.fileio import check_writable, read_input, write_atomic
from vtcodec.imageio import IMAGE_SUFFIXES, image_file_bytes, image_format_for, open_prepared
from vtcodec.metadata import ALPHA, DEFAULT_METADATA, METADATA_KINDS, from_chunks
from vtcodec.zoo import find_model, load_model, resolve_device

_python_show_warning = warnings.showwarning

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
MinutesOption = Annotated[float, typer.Option("--minutes", min=0.0, help="Wall-time budget of the run.")]
StepsOption = Annotated[Optional[int], typer.Option("--steps", min=1, help="Also stop after N steps in all.")]
ResumeOption = Annotated[bool, typer.Option("--resume", help="Continue from RUN/last.ckpt.")]
ExportOnlyOption = Annotated[bool, typer.Option("--export-only", help="No training: export RUN/last.ckpt.")]
MaxPixelsOption = Annotated[
    Optional[int],
    typer.Option(
        "--max-pixels", min=0, help="Refuse images (and .vtk files) larger than this; 0: no limit [default: Pillow's]."
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


def _add_model_dirs(folders: Optional[list[Path]]) -> None:
    for folder in folders or []:
        registry.add_model_dir(folder)


def _set_pixel_limit(max_pixels: Optional[int]) -> None:
    """Pillow refuses images above 2 x MAX_IMAGE_PIXELS, and so does the .vtk parser."""
    if max_pixels is not None:
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = None if max_pixels == 0 else max(1, max_pixels // 2)


def _is_batch(inputs: list[str], output: Optional[Path], manifest: Optional[Path]) -> bool:
    """One existing file and no output folder means single-file mode; anything else is a batch."""
    if len(inputs) != 1 or not Path(inputs[0]).is_file() or manifest is not None:
        return True
    return output is not None and (output.is_dir() or str(output).endswith(("/", os.sep)))


def _batch_output_dir(output: Optional[Path]) -> Optional[Path]:
    if output is not None and output.exists() and not output.is_dir():
        raise InputError(f"{output}: with several inputs, -o must be a folder")
    return output


def _report(summary: batch.Summary, rank: int, world: int) -> None:
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


@app.command()
def encode(
    images: Annotated[
        list[str], typer.Argument(help="Input images, folders (recursive) or quoted globs.", show_default=False)
    ],
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="Output .vtk, or a folder for many inputs [default: beside each input]."),
    ] = None,
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
    device: DeviceOption = "auto",
    batch_size: BatchSizeOption = 32,
    jobs: JobsOption = 2,
    manifest: ManifestOption = None,
    quiet: QuietOption = False,
    max_pixels: MaxPixelsOption = None,
    keep_metadata: Annotated[
        str,
        typer.Option(
            "--metadata",
            help="Keep: all, none, or a comma list of icc, exif, xmp. A profile not kept is converted to sRGB.",
        ),
    ] = DEFAULT_METADATA,
    alpha: Annotated[
        str,
        typer.Option(
            "--alpha", help="keep: transparency within 2/255 (0 and 255 exact); lossless; drop: composite over white."
        ),
    ] = "keep",
    frame: Annotated[
        Optional[int], typer.Option("--frame", min=0, help="The frame to code from an animated or multi-page file.")
    ] = None,
) -> None:
    """Compress images into .vtk files (one target: --tokens, --bytes, --bpp or --psnr).

    Several inputs, a folder or a glob make a batch run: -o names a folder that
    mirrors the input tree, outputs that already exist and verify are skipped (a
    rerun resumes), and a failure on one file does not stop the others.
    """
    _set_pixel_limit(max_pixels)
    loaded = load_model(model, device)
    if _is_batch(images, output, manifest):
        rank, world = batch.shard()
        out_dir = _batch_output_dir(output)
        all_jobs = batch.collect_jobs(images, out_dir, IMAGE_SUFFIXES, lambda p: p.with_suffix(".vtk"))
        summary = batch.encode_many(
            all_jobs[rank::world],
            loaded,
            tokens,
            max_bytes=max_bytes,
            bpp=bpp,
            psnr=psnr,
            batch_size=batch_size,
            threads=jobs,
            force=force,
            manifest=batch.manifest_part(manifest, rank, world),
            quiet=quiet,
            metadata=keep_metadata,
            alpha=alpha,
        )
        _report(summary, rank, world)
        return
    image = Path(images[0])
    out = output or image.with_suffix(".vtk")
    check_writable(out, force)
    prepared = open_prepared(image, frame, keep_metadata, alpha)
    result = codec.encode(prepared, tokens, max_bytes=max_bytes, bpp=bpp, psnr=psnr, model=loaded)
    write_atomic(out, result.data, force=force)
    size = len(result.data)
    height, width = prepared.pixels.shape[:2]
    summary = f"{out}: {size} bytes, {8 * size / (width * height):.4f} bpp, {width}x{height}"
    if prepared.extras.alpha is not None:
        summary += ", with alpha"
    if result.psnr is not None:
        summary += f", {result.psnr:.2f} dB"
    typer.echo(summary, err=True)
    if not result.target_met:
        typer.echo(f"vtcodec: warning: {psnr} dB is out of reach; wrote the best file (all tokens)", err=True)
    if prepared.dropped:
        items = ", ".join(f"{ITEM_NAMES[k]} ({v} bytes)" for k, v in prepared.dropped.items())
        typer.echo(f"vtcodec: note: not kept: {items}; keep them with --metadata", err=True)


@app.command()
def decode(
    files: Annotated[list[str], typer.Argument(help="Input .vtk files, folders (recursive) or quoted globs.")],
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output", "-o", help="Output image, or a folder for many inputs [default: FILE.decoded.png beside each]."
        ),
    ] = None,
    tokens: Annotated[
        Optional[int], typer.Option("--tokens", "-t", min=0, help="Decode only the first N tokens of each tile.")
    ] = None,
    image_format: Annotated[
        str, typer.Option("--format", help="Image suffix of batch outputs written to a folder.")
    ] = "png",
    force: ForceOption = False,
    model: ModelOption = None,
    model_dir: ModelDirOption = None,
    decoder: DecoderOption = None,
    realism: Annotated[
        Optional[float],
        typer.Option(
            "--realism",
            min=0.0,
            max=1.0,
            help="0 … 1: blend the default (fidelity) decoder toward the perceptual one; instead of --decoder.",
        ),
    ] = None,
    device: DeviceOption = "auto",
    batch_size: BatchSizeOption = 32,
    jobs: JobsOption = 2,
    manifest: ManifestOption = None,
    quiet: QuietOption = False,
    max_pixels: MaxPixelsOption = None,
) -> None:
    """Decompress .vtk files into images (format from the output suffix)."""
    _set_pixel_limit(max_pixels)
    _add_model_dirs(model_dir)
    target = resolve_device(device)
    if _is_batch(files, output, manifest):
        rank, world = batch.shard()
        out_dir = _batch_output_dir(output)
        suffix = "." + image_format.lstrip(".").lower()
        image_format_for(Path("x" + suffix))

        def name(p: Path) -> Path:
            return p.with_suffix(suffix) if out_dir is not None else p.with_name(p.stem + ".decoded" + suffix)

        all_jobs = batch.collect_jobs(files, out_dir, frozenset({batch.VTK_SUFFIX}), name)
        summary = batch.decode_many(
            all_jobs[rank::world],
            [model] if model else [],
            target,
            tokens=tokens,
            decoder=decoder,
            batch_size=batch_size,
            threads=jobs,
            force=force,
            manifest=batch.manifest_part(manifest, rank, world),
            quiet=quiet,
            realism=realism,
        )
        _report(summary, rank, world)
        return
    file = Path(files[0])
    out = output or file.with_name(file.stem + ".decoded.png")
    check_writable(out, force)
    stream = codec.read_tokens(read_input(file), models=[model] if model else [], device=target)
    image = codec.render(stream, tokens, decoder, realism)
    write_atomic(out, image_file_bytes(image, out), force=force)
    typer.echo(f"{out}: {image.width}x{image.height}" + (", with alpha" if image.mode == "RGBA" else ""), err=True)


@app.command()
def info(
    file: Annotated[Path, typer.Argument(help="A .vtk file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    model: ModelOption = None,
    model_dir: ModelDirOption = None,
) -> None:
    """Describe a .vtk file without decoding its pixels."""
    _add_model_dirs(model_dir)
    data = read_input(file)
    header, _ = container.unpack(data)
    try:
        found = find_model(header.model_id, [model] if model else [])
        codebook, decoders = found.codebook_size, decoder_names(found)
    except UnknownModelError as exc:
        codebook, decoders = None, []
        typer.echo(f"vtcodec: note: {exc}", err=True)
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
        "decoders": decoders,
        "format_version": header.version,
        "chunks": _chunk_records(header),
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
    if decoders:
        typer.echo(f"decoders: {decoders[0]} (default)" + "".join(f", {name}" for name in decoders[1:]))
    if record["chunks"]:
        items = [
            f"{ITEM_NAMES.get(c['item'], c['tag'])} {c['size']} bytes ({c['bytes']} stored)" for c in record["chunks"]
        ]
        typer.echo("carries: " + ", ".join(items))


ITEM_NAMES = {"icc": "colour profile", "exif": "EXIF", "xmp": "XMP", "alpha": "alpha plane"}


def _chunk_records(header: container.Header) -> list[dict]:
    """Each chunk: its tag, what it holds, its bytes in the file and its size decoded (checked, as on decode)."""
    extras = from_chunks(header.chunks, header.width, header.height)
    sizes = extras.items()
    kinds = {v: k for k, v in {**METADATA_KINDS, "alpha": ALPHA}.items()}
    records = []
    for tag, data in header.chunks:
        item = kinds.get(tag)
        size = sizes.get(item) if item else None
        records.append({"tag": tag.decode("ascii"), "item": item, "bytes": len(data), "size": size})
    return records


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
    model_dir: ModelDirOption = None,
) -> None:
    """Write a smaller .vtk holding a prefix of each tile's tokens (no re-encoding, no network)."""
    _add_model_dirs(model_dir)
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
    minutes: MinutesOption = 60.0,
    steps: StepsOption = None,
    resume: ResumeOption = False,
    init: Annotated[
        Optional[Path], typer.Option("--init", help="Start from a model file (e.g. the shipped one).")
    ] = None,
    refit: Annotated[
        Optional[Path],
        typer.Option("--refit", help="No training: fit the priors again for this model file's weights."),
    ] = None,
    export_only: ExportOnlyOption = False,
    prior_tiles: Annotated[
        Optional[int], typer.Option("--prior-tiles", min=1, help="Training tiles to fit the priors on [16384].")
    ] = None,
) -> None:
    """Train a tokenizer, then fit its priors and export RUN/model.safetensors.

    Runs unchanged under torchrun (DDP: gloo on CPU, NCCL on CUDA); each rank reads its own shard of the images.
    """
    from vtcodec.training import run_tokenizer

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
        prior_tiles or 16384,
    )
    if path is not None:  # rank 0 exports
        typer.echo(f"exported {path} (model id {load_model(path).model_id.hex()})", err=True)


@app.command("tokens")
def tokens_command(
    inputs: Annotated[
        list[str], typer.Argument(help=".vtk files or images: files, folders (recursive), quoted globs.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the token shards.")],
    tokens: Annotated[
        Optional[int],
        typer.Option("--tokens", "-t", min=0, help="Keep at most N tokens per tile (images: encode with N [64])."),
    ] = None,
    shard_size: Annotated[int, typer.Option("--shard-size", min=1, help="Samples per tar shard.")] = 1000,
    force: Annotated[bool, typer.Option("--force", "-f", help="Rewrite complete shards too.")] = False,
    model: ModelOption = None,
    quiet: QuietOption = False,
) -> None:
    """Export tokens for ML training: WebDataset-style tar shards of .npy tokens and .json metadata.

    A rerun resumes: complete shards are kept, the rest are rewritten. Read them with vtcodec.datasets.TokenShards.
    """
    from vtcodec import token_shards

    loaded = load_model(model) if model else None
    summary = token_shards.export_shards(
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


@app.command("train-decoder")
def train_decoder(
    data: Annotated[list[Path], typer.Argument(help="Folders of training images.")],
    init: Annotated[Path, typer.Option("--init", help="Model file whose token space the decoder serves.")],
    out: Annotated[Path, typer.Option("--out", help="Run folder: checkpoints, log, RUN/decoder.safetensors.")],
    val: Annotated[Optional[Path], typer.Option("--val", help="Held-out folder for periodic evaluation.")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", help="JSON with a 'decoder_train' section.")] = None,
    minutes: MinutesOption = 60.0,
    steps: StepsOption = None,
    resume: ResumeOption = False,
    init_decoder: Annotated[
        Optional[str], typer.Option("--init-decoder", help="Start from this decoder of the model (name or file).")
    ] = None,
    perceptual_weights: Annotated[
        Optional[Path],
        typer.Option("--perceptual-weights", help="The stlpips-pytorch 0.0.2 wheel, for the 'perceptual' loss."),
    ] = None,
    name: Annotated[str, typer.Option("--name", help="The decoder's name in the registry.")] = "grid",
    export_only: ExportOnlyOption = False,
    weights: Annotated[
        str, typer.Option("--weights", help="How the decoder file stores its weights: int8 (half the bytes) or fp16.")
    ] = "int8",
) -> None:
    """Train a whole-grid decoder for a model's token space (encoder frozen), export RUN/decoder.safetensors.

    Every file made with the model decodes with the result: `vtcodec decode FILE --decoder RUN/decoder.safetensors`.
    """
    from vtcodec.training import run_decoder

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


@app.command()
def bench(
    images_dir: Annotated[Path, typer.Argument(help="Folder of images (e.g. ../shared/data/kodak).")],
    out: Annotated[Path, typer.Option("--out", help="Results folder: JSON, CSV, plots, BD-rate, crops.")],
    codecs: Annotated[str, typer.Option("--codecs", help="Comma-separated: vtcodec,jpeg,webp,avif.")] = (
        "vtcodec,jpeg,webp,avif"
    ),
    points: Annotated[int, typer.Option("--points", min=1, help="vtcodec token counts to measure.")] = 5,
    token_list: Annotated[
        Optional[str], typer.Option("--tokens", help="Comma-separated token counts to measure (instead of --points).")
    ] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Only the first N images.")] = None,
    per_image: Annotated[bool, typer.Option("--per-image", help="Also one curve per image in results.json.")] = False,
    model: ModelOption = None,
    decoder: Annotated[
        Optional[str],
        typer.Option(
            "--decoder",
            help="Decoders to bench on the same files, comma-separated (names or decoder files); "
            "default: the model's default. The first is reported as vtcodec, the others as vtcodec-NAME.",
        ),
    ] = None,
    quiet: QuietOption = False,
    metric_list: Annotated[
        Optional[str],
        typer.Option(
            "--metrics",
            help="Comma-separated: psnr-rgb, ms-ssim, haarpsi, ssimulacra2 [default: every installed one].",
        ),
    ] = None,
) -> None:
    """Rate-quality comparison with JPEG, WebP and AVIF at equal bytes, with plots and BD-rates."""
    from vtcodec import bench as benchmark

    metric_names = [m.strip().lower() for m in metric_list.split(",") if m.strip()] if metric_list else None
    benchmark.Metrics(metric_names)  # an unknown metric fails here, before any image is read

    chosen = [c.strip().lower() for c in codecs.split(",") if c.strip()]
    unknown = sorted(set(chosen) - {"vtcodec", "jpeg", "webp", "avif"})
    if unknown or "vtcodec" not in chosen:
        raise InputError(f"--codecs must include vtcodec and may add jpeg, webp, avif (got {codecs!r})")
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


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """vtcodec's own warnings as one line on stderr; others as Python prints them."""
    if issubclass(category, VtcodecWarning):
        print(f"vtcodec: warning: {message}", file=sys.stderr)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


def main() -> None:
    """Console entry point: errors become one line on stderr and a non-zero exit code."""
    warnings.showwarning = _show_warning
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
