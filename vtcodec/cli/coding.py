"""``vtcodec encode``, ``decode``, ``info`` and ``truncate``: files in, files out (``vtcodec.codec``, ``batch``)."""

from __future__ import annotations

import io
import json
import math
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from vtcodec import container, registry
from vtcodec.cli.common import (
    BatchSizeOption,
    DecoderOption,
    DeviceOption,
    ForceOption,
    JobsOption,
    ManifestOption,
    MaxPixelsOption,
    ModelDirOption,
    ModelOption,
    QuietOption,
    VerboseOption,
    add_model_dirs,
    at_least,
    batch_output_dir,
    between,
    command,
    is_batch,
    naming,
    report,
    return_large_blocks,
    set_pixel_limit,
    set_verbose,
)
from vtcodec.errors import UnknownModelError, UsageError
from vtcodec.fileio import check_writable, read_input, write_atomic
from vtcodec.imageio import IMAGE_SUFFIXES, image_file_bytes, image_format_for, open_prepared
from vtcodec.jobs import VTK_SUFFIX, collect_jobs, manifest_part, shard
from vtcodec.metadata import CHUNK_KINDS, DEFAULT_METADATA, KIND_OF_TAG, item_sizes, read_tone

if TYPE_CHECKING:
    from vtcodec.zoo import LoadedModel

MetadataOption = Annotated[
    str,
    typer.Option(
        "--metadata",
        metavar="all|none|LIST",
        help="Keep: all, none, or a comma list of icc, exif, xmp. A profile not kept is converted to sRGB.",
    ),
]
AlphaOption = Annotated[
    str,
    typer.Option(
        "--alpha",
        metavar="keep|lossless|drop",
        help="keep: transparency within 2/255 (0 and 255 exact); lossless; drop: composite over white.",
    ),
]
FrameOption = Annotated[
    Optional[int],
    typer.Option(
        "--frame", metavar="N", callback=at_least(0), help="The frame to code from an animated or multi-page file."
    ),
]


def _ladder(value: Optional[str]) -> Optional[tuple[int, ...]]:
    """``--layers``: comma-separated token positions, each at least 1 (else a usage error)."""
    if value is None:
        return None
    try:
        ends = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise typer.BadParameter(f"a comma-separated list of token counts, not {value!r}") from None
    if not ends or min(ends) < 1 or len(set(ends)) > 63:
        raise typer.BadParameter(f"1 to 63 token counts, each 1 or more, not {value!r}")
    return ends


FormatVersionOption = Annotated[
    int,
    typer.Option(
        "--format-version",
        metavar="1|2",
        callback=between(1, 2),
        help="The .vtk format: 2 keeps the tokens in layers, so that any cut of the file after its header "
        "decodes; 1 is one payload, for readers older than vtcodec 0.5.",
    ),
]
LayersOption = Annotated[
    Optional[str],
    typer.Option(
        "--layers",
        metavar="LIST",
        callback=_ladder,
        help="Where version 2 layers end, in tokens per tile [default: 4,8,16,32,64,128,256,512].",
    ),
]


@command()
def encode(
    images: Annotated[
        list[str],
        typer.Argument(metavar="IMAGE", help="Input images, folders (recursive) or quoted globs; - is stdin."),
    ],
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output",
            "-o",
            metavar="FILE|DIR",
            help="Output .vtk, a folder for many inputs, or - for stdout [default: beside each input].",
        ),
    ] = None,
    tokens: Annotated[
        Optional[int],
        typer.Option(
            "--tokens",
            "-t",
            metavar="N",
            callback=at_least(0),
            help="Tokens per tile, 0 … 512 with the shipped model [default: 64].",  # codec.DEFAULT_TOKENS
        ),
    ] = None,
    max_bytes: Annotated[
        Optional[int],
        typer.Option(
            "--bytes",
            metavar="B",
            callback=at_least(1),
            help="Whole-file budget in bytes (rate-distortion allocation).",
        ),
    ] = None,
    bpp: Annotated[
        Optional[float], typer.Option("--bpp", metavar="BPP", callback=at_least(0.0), help="Budget in bits per pixel.")
    ] = None,
    psnr: Annotated[
        Optional[float], typer.Option("--psnr", metavar="DB", help="Smallest file with PSNR-RGB >= DB decibels.")
    ] = None,
    quality: Annotated[
        Optional[float],
        typer.Option(
            "--quality",
            "-q",
            metavar="Q",
            callback=between(0.0, 100.0),
            help="Quality 0 (smallest) … 100 (best): a look, not a size; each tile stops where tokens stop paying.",
        ),
    ] = None,
    force: ForceOption = False,
    model: ModelOption = None,
    device: DeviceOption = "auto",
    batch_size: BatchSizeOption = 32,
    jobs: JobsOption = 2,
    manifest: ManifestOption = None,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
    max_pixels: MaxPixelsOption = None,
    keep_metadata: MetadataOption = DEFAULT_METADATA,
    alpha: AlphaOption = "keep",
    frame: FrameOption = None,
    force_name: Annotated[
        bool, typer.Option("--force-name", help="Write the .vtk file under -o's name even if it is not .vtk.")
    ] = False,
    format_version: FormatVersionOption = 2,
    layers: LayersOption = None,
) -> None:
    """Compress images into .vtk files (one target: --quality, --tokens, --bytes, --bpp or --psnr).

    Several inputs, a folder or a glob make a batch run: -o names a folder that
    mirrors the input tree, outputs that already exist and verify are skipped (a
    rerun resumes), and a failure on one file does not stop the others.
    `-` reads the image from standard input; `-o -` writes the .vtk to standard output.

    \b
    Examples:
      vtcodec encode photo.png                 photo.vtk beside it, 64 tokens per tile
      vtcodec encode photo.png -q 70 -o q.vtk  quality 70 of 100: the bytes follow the image
      vtcodec encode photo.png -t 16 -o s.vtk  16 tokens per tile: smaller, coarser
      vtcodec encode photo.png --bytes 2000    the whole file in 2000 bytes
      vtcodec encode photos/ -o vtk/           a folder; a rerun resumes
      cat photo.png | vtcodec encode - -o - > photo.vtk
    """
    from vtcodec import batch  # torch: imported when a command runs, not for --help (start-up time)
    from vtcodec.pipeline import DEFAULT_LADDER, Layout
    from vtcodec.zoo import load_model  # torch (start-up time)

    if layers is not None and format_version == 1:
        raise UsageError("--layers needs format version 2")
    layout = Layout(format_version, layers or DEFAULT_LADDER)
    set_pixel_limit(max_pixels)
    set_verbose(verbose)
    single = images == [STDIO] or not is_batch(images, output, manifest)
    if single:
        output = _single_output(images[0], output, ".vtk", force_name)
    loaded = load_model(model, device)
    if not single:
        rank, world = shard()
        out_dir = batch_output_dir(output)
        all_jobs = collect_jobs(images, out_dir, IMAGE_SUFFIXES, lambda p: p.with_suffix(".vtk"))
        summary = batch.encode_many(
            all_jobs[rank::world],
            loaded,
            tokens,
            max_bytes=max_bytes,
            bpp=bpp,
            psnr=psnr,
            quality=quality,
            batch_size=batch_size,
            threads=jobs,
            force=force,
            manifest=manifest_part(manifest, rank, world),
            quiet=quiet,
            metadata=keep_metadata,
            alpha=alpha,
            layout=layout,
        )
        report(summary, rank, world)
        return
    target = {"tokens": tokens, "max_bytes": max_bytes, "bpp": bpp, "psnr": psnr, "quality": quality}
    target["layout"] = layout
    _encode_file(images[0], output, force, frame, keep_metadata, alpha, loaded, target, progress=not quiet)


STDIO = "-"  # as an input: standard input; as -o: standard output
STDIN_NAME = "<stdin>"  # how messages name standard input


def _single_output(source: str, output: Optional[Path], suffix: str, force_name: bool = False) -> Path:
    """The output of a one-file command: ``-o`` (checked against ``suffix``) or the default beside the input."""
    if output is None:
        if source == STDIO:
            raise UsageError("reading standard input needs -o (a file, or - for standard output)")
        return (
            Path(source).with_suffix(suffix)
            if suffix == ".vtk"
            else Path(source).with_name(Path(source).stem + ".decoded" + suffix)
        )
    if str(output) == STDIO:
        return output
    if suffix == ".vtk" and output.suffix.lower() != ".vtk" and not force_name:
        raise UsageError(
            f"{output}: encode writes .vtk files; name it .vtk, or use `vtcodec decode` to write images "
            "(--force-name keeps this name)"
        )
    if suffix != ".vtk":
        image_format_for(output)  # an unknown image suffix is a usage error
    return output


def _write(out: Path, data: bytes, force: bool) -> str:
    """Write ``data`` to ``out`` (atomically) or to standard output; how messages name where it went."""
    if str(out) == STDIO:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return "<stdout>"
    write_atomic(out, data, force=force)
    return str(out)


def _encode_file(
    image: str,
    out: Path,
    force: bool,
    frame: int | None,
    keep_metadata: str,
    alpha: str,
    model: LoadedModel,
    target: dict,
    progress: bool = True,
) -> None:
    """Encode one image to ``out`` (``target``: encode's tokens, max_bytes, bpp, psnr); report on stderr."""
    if str(out) != STDIO:
        check_writable(out, force)
    if image == STDIO:
        prepared = open_prepared(STDIN_NAME, frame, keep_metadata, alpha, data=sys.stdin.buffer.read())
    else:
        prepared = open_prepared(image, frame, keep_metadata, alpha)
    from vtcodec import codec  # torch (start-up time)

    result = codec.encode(prepared, model=model, progress=progress, **target)
    where = _write(out, result.data, force)
    size = len(result.data)
    height, width = prepared.pixels.shape[:2]
    summary = f"{where}: {size} bytes, {8 * size / (width * height):.4f} bpp, {width}x{height}"
    if prepared.extras.alpha is not None:
        summary += ", with alpha"
    if result.psnr is not None:
        summary += f", {result.psnr:.2f} dB" if math.isfinite(result.psnr) else ", exact"
    typer.echo(summary, err=True)
    if not result.target_met:
        typer.echo(f"vtcodec: warning: {target['psnr']} dB is out of reach; wrote the best file (all tokens)", err=True)
    if prepared.dropped:
        items = ", ".join(f"{ITEM_LABELS[k]} ({v} bytes)" for k, v in prepared.dropped.items())
        typer.echo(f"vtcodec: note: not kept: {items}; keep them with --metadata", err=True)


@command()
def decode(
    files: Annotated[
        list[str],
        typer.Argument(metavar="FILE", help="Input .vtk files, folders (recursive) or quoted globs; - is stdin."),
    ],
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output",
            "-o",
            metavar="FILE|DIR",
            help="Output image, a folder for many inputs, or - for stdout [default: FILE.decoded.png beside each].",
        ),
    ] = None,
    tokens: Annotated[
        Optional[int],
        typer.Option(
            "--tokens", "-t", metavar="N", callback=at_least(0), help="Decode only the first N tokens of each tile."
        ),
    ] = None,
    image_format: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="png|jpg|webp|tif|bmp",
            help="Image format of outputs written to a folder or to stdout.",
        ),
    ] = "png",
    force: ForceOption = False,
    model: ModelOption = None,
    model_dir: ModelDirOption = None,
    decoder: DecoderOption = None,
    realism: Annotated[
        Optional[float],
        typer.Option(
            "--realism",
            metavar="R",
            callback=between(0.0, 1.0),
            help="0 … 1: blend the default (fidelity) decoder toward the perceptual one; instead of --decoder.",
        ),
    ] = None,
    device: DeviceOption = "auto",
    batch_size: BatchSizeOption = 32,
    jobs: JobsOption = 2,
    manifest: ManifestOption = None,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
    max_pixels: MaxPixelsOption = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="Refuse a version 2 file that was cut short, instead of decoding its complete layers."
        ),
    ] = False,
    progressive_out: Annotated[
        Optional[Path],
        typer.Option(
            "--progressive-out",
            metavar="DIR",
            help="Also write a picture after each layer as the file is read (DIR/NAME.layer-K.png); one file only.",
        ),
    ] = None,
) -> None:
    """Decompress .vtk files into images (format from the output suffix).

    `-` reads the .vtk from standard input; `-o -` writes the image to standard output (--format, PNG by default).

    \b
    Examples:
      vtcodec decode photo.vtk                 photo.decoded.png beside it
      vtcodec decode photo.vtk -o photo.jpg    any format from the suffix
      vtcodec decode photo.vtk -t 16 -o p.png  a preview from 16 tokens per tile
      vtcodec decode vtk/ -o png/              a folder; a rerun resumes
      cat photo.vtk | vtcodec decode - -o - > photo.png
    """
    from vtcodec import batch, codec  # torch (start-up time)
    from vtcodec.zoo import resolve_device  # torch (start-up time)

    set_pixel_limit(max_pixels)
    set_verbose(verbose)
    add_model_dirs(model_dir)
    target = resolve_device(device)
    suffix = "." + image_format.lstrip(".").lower()
    single = files == [STDIO] or not is_batch(files, output, manifest)
    if single:
        output = _single_output(files[0], output, suffix)
    if not single:
        rank, world = shard()
        out_dir = batch_output_dir(output)
        image_format_for(Path("x" + suffix))

        def name(p: Path) -> Path:
            return p.with_suffix(suffix) if out_dir is not None else p.with_name(p.stem + ".decoded" + suffix)

        all_jobs = collect_jobs(files, out_dir, frozenset({VTK_SUFFIX}), name)
        summary = batch.decode_many(
            all_jobs[rank::world],
            [model] if model else [],
            target,
            tokens=tokens,
            decoder=decoder,
            batch_size=batch_size,
            threads=jobs,
            force=force,
            manifest=manifest_part(manifest, rank, world),
            quiet=quiet,
            realism=realism,
        )
        report(summary, rank, world)
        return
    file = Path(STDIN_NAME if files[0] == STDIO else files[0])
    if str(output) != STDIO:
        check_writable(output, force)
    return_large_blocks()  # one decode: a lower peak for a little time
    with naming(file):
        if progressive_out is not None:
            stem = Path(output.name).stem if files[0] == STDIO and str(output) != STDIO else Path(file.name).stem
            data = _decode_layers_to(progressive_out, stem, file, files[0] == STDIO, model, decoder, force)
        else:
            data = sys.stdin.buffer.read() if files[0] == STDIO else read_input(file)
        stream = codec.read_tokens(data, models=[model] if model else [], device=target, partial=not strict)
        image = codec.render(stream, tokens, decoder, realism)
    if stream.cut is not None:
        typer.echo(f"{file}: {stream.cut}", err=True)
    fmt_path = Path("stdout" + suffix) if str(output) == STDIO else output
    where = _write(output, image_file_bytes(image, fmt_path), force)
    typer.echo(f"{where}: {image.width}x{image.height}" + (", with alpha" if image.mode == "RGBA" else ""), err=True)


def _decode_layers_to(
    folder: Path, stem: str, file: Path, stdin: bool, model: Optional[Path], decoder: Optional[str], force: bool
) -> bytes:
    """Read ``file`` (or standard input) as it arrives, writing a picture after each complete layer into
    ``folder`` as ``STEM.layer-K.png``; returns the bytes read."""
    from vtcodec import codec  # torch (start-up time)

    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
    received = bytearray()

    class Recording(io.RawIOBase):  # the stream, with a copy of what was read
        def __init__(self, raw) -> None:
            self.raw = raw

        def read(self, size: int = -1) -> bytes:
            chunk = self.raw.read(size)
            received.extend(chunk or b"")
            return chunk

    with open(file, "rb") if not stdin else nullcontext(sys.stdin.buffer) as raw:
        for k, picture in enumerate(codec.decode_progressive(Recording(raw), model, decoder), start=1):
            out = folder / f"{stem}.layer-{k}.png"
            write_atomic(out, image_file_bytes(picture, out), force=force)
            typer.echo(f"{out}: layer {k}", err=True)
    return bytes(received)


@command()
def info(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A .vtk file.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    model: ModelOption = None,
    model_dir: ModelDirOption = None,
    max_pixels: MaxPixelsOption = None,
) -> None:
    """Describe a .vtk file without decoding its pixels."""
    set_pixel_limit(max_pixels)
    add_model_dirs(model_dir)
    data = read_input(file)
    with naming(file):
        parsed = container.parse(data, partial=True)
        header = parsed.header
        tone = read_tone(header.chunks)
    try:
        found = registry.find_model_file(header.model_id, [model] if model else [])  # the header only: no torch
        decoders = registry.decoder_names(found.model_id, found.has_decoder, installed_only=True)
        missing = [n for n in registry.decoder_names(found.model_id, found.has_decoder) if n not in decoders]
        codebook = found.codebook_size
    except UnknownModelError as exc:
        codebook, decoders, missing = None, [], []
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
        "decoders_not_installed": missing,
        "format_version": header.version,
        "layers": [
            {"tokens": end, "ends_at_byte": at} for end, at in zip(header.layers, parsed.layer_offsets, strict=False)
        ],
        "layers_in_header": len(header.layers),
        "complete": parsed.complete,
        "chunks": _chunk_records(header),
        "tone": None if tone is None else {"grey": tone.grey, "flat": tone.flat, "mean": list(tone.mean)},
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
    if header.layers:
        held = len(parsed.payloads)
        ends = " ".join(f"{end}@{at}" for end, at in zip(header.layers, parsed.layer_offsets, strict=False))
        typer.echo(f"layers (tokens per tile @ the byte where each ends; cut there to serve fewer bytes): {ends}")
        if not parsed.complete:
            end = header.layers[held - 1] if held else 0
            typer.echo(
                f"partial file: {held} of {len(header.layers)} layers, {end} of {header.layers[-1]} tokens per tile"
            )
    if decoders:
        typer.echo(f"decoders: {decoders[0]} (default)" + "".join(f", {name}" for name in decoders[1:]))
    if missing:
        typer.echo(f"not installed: {', '.join(missing)} (their files go in --model-dir or $VTCODEC_MODEL_DIR)")
    carried = [c for c in record["chunks"] if c["item"] != "tone"]
    if carried:
        items = [f"{ITEM_LABELS.get(c['item'], c['tag'])} {c['size']} bytes ({c['bytes']} stored)" for c in carried]
        typer.echo("carries: " + ", ".join(items))
    if tone is not None:
        kinds = [name for name, on in (("grey (decodes to one channel)", tone.grey), ("flat", tone.flat)) if on]
        typer.echo("tone: " + ", ".join([*kinds, "mean " + ",".join(map(str, tone.mean))]))


ITEM_LABELS = {kind.item: kind.label for kind in CHUNK_KINDS}


def _chunk_records(header: container.Header) -> list[dict]:
    """Each chunk: its tag, what it holds, its bytes in the file and its size decoded (metadata checked as on
    decode; the alpha plane is not inflated)."""
    sizes = item_sizes(header.chunks, header.width, header.height)
    records = []
    for tag, data in header.chunks:
        kind = KIND_OF_TAG.get(tag)
        item = kind.item if kind else None
        size = sizes.get(item) if item else None
        records.append({"tag": tag.decode("ascii"), "item": item, "bytes": len(data), "size": size})
    return records


@command()
def truncate(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="Input .vtk file.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", metavar="FILE", help="Output .vtk file.")],
    max_bytes: Annotated[
        Optional[int],
        typer.Option("--bytes", metavar="B", callback=at_least(1), help="Whole-file budget in bytes."),
    ] = None,
    bpp: Annotated[
        Optional[float],
        typer.Option("--bpp", metavar="BPP", callback=at_least(0.0), help="Budget in bits per pixel."),
    ] = None,
    tokens: Annotated[
        Optional[int],
        typer.Option("--tokens", "-t", metavar="N", callback=at_least(0), help="Keep at most N tokens per tile."),
    ] = None,
    force: ForceOption = False,
    model: ModelOption = None,
    model_dir: ModelDirOption = None,
    max_pixels: MaxPixelsOption = None,
    cut: Annotated[
        bool,
        typer.Option(
            "--cut",
            help="Keep whole layers of a version 2 file, as many as fit: no model, no entropy coding "
            "(also what happens when the file's model is not installed).",
        ),
    ] = False,
) -> None:
    """Write a smaller .vtk holding a prefix of each tile's tokens (no re-encoding, no network).

    \b
    Examples:
      vtcodec truncate photo.vtk --bytes 1000 -o small.vtk   the best prefix in 1000 bytes
      vtcodec truncate photo.vtk --bytes 1000 --cut -o s.vtk  whole layers only, without the model
    """
    set_pixel_limit(max_pixels)
    add_model_dirs(model_dir)
    check_writable(output, force)
    if sum(v is not None for v in (tokens, max_bytes, bpp)) != 1:
        raise UsageError("give exactly one of --tokens, --bytes or --bpp")
    with naming(file):
        data = read_input(file)
        if cut:  # the container alone: no torch, no model
            parsed = container.parse(data, partial=True)
            if bpp is not None:
                max_bytes = int(bpp * parsed.header.width * parsed.header.height / 8)
            data = container.cut_to_fit(parsed, tokens, max_bytes)
        else:
            from vtcodec import codec  # torch (start-up time)

            data = codec.truncate(data, tokens=tokens, max_bytes=max_bytes, bpp=bpp, model=model)
    write_atomic(output, data, force=force)
    typer.echo(f"{output}: {len(data)} bytes", err=True)
