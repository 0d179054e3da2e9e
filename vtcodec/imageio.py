"""Reading images into what the tokenizer codes, under one documented policy, and writing them back.

Policy (:func:`prepare`, applied in this order):

1. Only one frame is coded: :func:`read_image` picks it (the first by default, with
   a :class:`VtcodecWarning` when the file has more).
2. EXIF orientation is applied (``ImageOps.exif_transpose``). An EXIF block that
   Pillow cannot parse leaves the pixels unrotated, with a :class:`VtcodecWarning`.
   A kept EXIF block then has its orientation set to 1, so no viewer rotates twice.
3. 16- and 32-bit integer modes (``I;16*``, ``I``) are scaled to 8 bits by their
   nominal range (65535 for ``I;16``; 0..65535 clipped for ``I``); float ``F`` is
   taken as 0..1 if its maximum is at most 1, else clipped to 0..255.
4. Colour: an embedded ICC profile is kept (``metadata`` has ``icc``: the pixels are
   coded as they are and the profile is stored) or the pixels are converted to sRGB
   with littleCMS (``PIL.ImageCms``), so the colours stay right either way. A profile
   that littleCMS cannot use is dropped with a warning and the pixels taken as sRGB.
5. Transparency (RGBA, LA, PA, and P or RGB/L with a ``transparency`` entry) is kept
   as an alpha plane: ``alpha="keep"`` within 2/255 at every pixel (0 and 255 exact),
   ``"lossless"`` exactly; the colour of fully transparent pixels is set to white.
   ``alpha="drop"`` composites over white. A fully opaque alpha channel is not stored.
6. Everything else (L, 1, P, CMYK, YCbCr, LAB, HSV) goes through Pillow's ``convert("RGB")``.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vtcodec.container import too_many_pixels
from vtcodec.errors import InputError, LibraryWarning, UsageError, VtcodecError, VtcodecWarning
from vtcodec.fileio import check_readable
from vtcodec.metadata import (
    DEFAULT_METADATA,
    EXIF_PREFIX,
    Extras,
    apply_tone,
    parse_metadata,
    quantize_alpha,
    reset_orientation,
    strip_exif_prefix,
)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"})


ALPHA_MODES = ("keep", "lossless", "drop")
_ALPHA_IMAGE_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


@dataclass(frozen=True)
class Prepared:
    """An image as the codec takes it: RGB pixels for the tokenizer and what travels beside them."""

    pixels: np.ndarray  # (height, width, 3) uint8
    extras: Extras = field(default_factory=Extras)
    dropped: dict[str, int] = field(default_factory=dict)  # metadata not kept: name -> bytes
    converted: bool = False  # the pixels were converted from an embedded profile to sRGB


def _oriented(img: Image.Image) -> tuple[Image.Image, bool]:
    """``img`` with its EXIF orientation applied, and whether it was read; unrotated, with a warning, if not."""
    try:
        return ImageOps.exif_transpose(img), True
    except Exception as exc:  # Pillow's EXIF parser raises SyntaxError, struct.error, ValueError, ...
        warnings.warn(
            f"unreadable EXIF block ({type(exc).__name__}: {exc}); pixels coded without rotation",
            VtcodecWarning,
            stacklevel=4,
        )
        img = img.copy()
        img.info.pop("exif", None)  # so that no later step trips over it again
        return img, False


def _as_bytes(value: object) -> bytes | None:
    if isinstance(value, str):
        value = value.encode("utf-8")
    return bytes(value) if isinstance(value, bytes | bytearray) and value else None


def _eight_bit(img: Image.Image) -> Image.Image:
    """RGBA if ``img`` has transparency, else RGB, L or CMYK, 8 bits per channel."""
    if img.mode == "P" or (img.mode in ("RGB", "L") and "transparency" in img.info):
        img = img.convert("RGBA")
    if img.mode == "La":
        img = img.convert("LA")  # Pillow converts La to nothing else
    if img.mode in _ALPHA_IMAGE_MODES:
        return img.convert("RGBA")
    if img.mode.startswith("I;16") or img.mode == "I":
        values = np.asarray(img, dtype=np.float64)
        return Image.fromarray(np.clip(np.round(values / 257.0), 0, 255).astype(np.uint8), "L")
    if img.mode == "F":
        values = np.asarray(img, dtype=np.float64)
        if values.size and np.nanmax(values) <= 1.0:
            values = values * 255.0
        return Image.fromarray(np.clip(np.nan_to_num(np.round(values)), 0, 255).astype(np.uint8), "L")
    return img if img.mode in ("RGB", "L", "CMYK") else img.convert("RGB")


def _to_srgb(img: Image.Image, icc: bytes) -> Image.Image:
    """``img`` (RGB, L or CMYK) converted from the profile ``icc`` to sRGB; as it is, with a warning, if unusable."""
    from PIL import ImageCms  # littleCMS: only for an image with a profile

    if img.mode == "L" and icc[16:20] == b"RGB ":
        img = img.convert("RGB")  # grey pixels under an RGB profile (a photo turned grey that kept its profile)
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(img, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except Exception as exc:  # PyCMSError, OSError, ValueError from a broken or mismatched profile
        warnings.warn(
            f"unusable colour profile ({type(exc).__name__}: {exc}); pixels taken as sRGB",
            VtcodecWarning,
            stacklevel=4,
        )
        return img.convert("RGB")


def check_options(metadata: str | frozenset[str], alpha: str) -> frozenset[str]:
    """The metadata kinds to keep; :class:`InputError` for an unknown kind or alpha mode."""
    if alpha not in ALPHA_MODES:
        raise UsageError(f"alpha must be one of {', '.join(ALPHA_MODES)}, not {alpha!r}")
    return parse_metadata(metadata)


def prepare(img: Image.Image, metadata: str | frozenset[str] = DEFAULT_METADATA, alpha: str = "keep") -> Prepared:
    """Pixels and extras of any Pillow image under the module policy; ``metadata`` names what to keep.

    Whatever Pillow raises while converting becomes an :class:`InputError`.
    """
    keep = check_options(metadata, alpha)
    try:
        return _prepare(img, keep, alpha)
    except (VtcodecError, MemoryError, RecursionError):
        raise
    except Exception as exc:  # a mode or plugin that Pillow cannot convert
        raise InputError(f"cannot convert the image ({type(exc).__name__}: {exc})") from None


def _prepare(img: Image.Image, keep: frozenset[str], alpha: str) -> Prepared:
    exif, xmp, icc = (_as_bytes(img.info.get(k)) for k in ("exif", "xmp", "icc_profile"))
    img, exif_read = _oriented(img)
    img = _eight_bit(img)
    plane = None
    if img.mode == "RGBA":
        plane = np.asarray(img.getchannel("A"))
        if alpha == "drop" or plane.min() == 255:
            background = Image.new("RGBA", img.size, (255, 255, 255, 255))
            img, plane = Image.alpha_composite(background, img), None
        elif alpha == "keep":
            plane = quantize_alpha(plane)
        img = img.convert("RGB")
    # A profile is kept only with the pixels it describes: RGB ones, under an RGB profile.
    keep_icc = "icc" in keep and img.mode == "RGB" and icc is not None and icc[16:20] == b"RGB "
    if icc and not keep_icc:
        img = _to_srgb(img, icc)
    pixels = np.array(img.convert("RGB"), dtype=np.uint8)
    if plane is not None:
        pixels[plane == 0] = 255  # any colour is right under alpha 0; white codes cheaply
    if exif is not None:
        exif = strip_exif_prefix(exif)
        if exif_read:
            try:
                exif = reset_orientation(exif)
            except ValueError:
                pass  # Pillow read it, so it is not unreadable; leave its bytes as they are
    kept = {"icc": icc if keep_icc else None, "exif": exif if "exif" in keep else None}
    kept["xmp"] = xmp if "xmp" in keep else None
    dropped = {k: len(v) for k, v in (("exif", exif), ("xmp", xmp)) if v and kept[k] is None}
    extras = Extras(kept["icc"], kept["exif"], kept["xmp"], plane)
    return Prepared(pixels, extras, dropped, converted=bool(icc) and not keep_icc)


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow image as 8-bit RGB under the module policy (sRGB, alpha composited over white)."""
    return Image.fromarray(prepare(img, "none", "drop").pixels, "RGB")


def with_extras(pixels: np.ndarray, extras: Extras) -> Image.Image:
    """A decoded image: RGB, or L when its tone says grey (RGBA or LA with the alpha plane), shifted to the
    tone's mean, with the profile and metadata in ``info``."""
    pixels = apply_tone(pixels, extras.tone)
    image = Image.fromarray(np.ascontiguousarray(pixels), "L" if pixels.ndim == 2 else "RGB")
    if extras.alpha is not None:
        image.putalpha(Image.fromarray(extras.alpha, "L"))
    if extras.icc:
        image.info["icc_profile"] = extras.icc
    if extras.exif:
        image.info["exif"] = EXIF_PREFIX + extras.exif
    if extras.xmp:
        image.info["xmp"] = extras.xmp
    return image


def read_image(path: str | Path, frame: int | None = None) -> Image.Image:
    """Open and fully load one frame of an image file (the first by default), or raise :class:`InputError`.

    A file with more frames than one gets a :class:`VtcodecWarning` unless ``frame`` chose one.
    """
    return _read(Path(path), frame, lambda img: img)


def open_prepared(
    path: str | Path,
    frame: int | None = None,
    metadata: str | frozenset[str] = DEFAULT_METADATA,
    alpha: str = "keep",
    data: bytes | None = None,
) -> Prepared:
    """:func:`prepare` of one frame of an image file; every failure is an :class:`InputError` naming the file.

    With ``data``, the image is those bytes (standard input, say) and ``path`` only names it.
    """
    check_options(metadata, alpha)  # a bad option is no fault of the file
    return _read(Path(path), frame, lambda img: prepare(img, metadata, alpha), data=data)


def open_image(path: str | Path) -> Image.Image:
    """Open and fully load an image file as RGB (:func:`to_rgb`), or raise :class:`InputError`."""
    return _read(Path(path), None, to_rgb, warn_frames=False)


_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_stderr_lock = threading.Lock()


@contextlib.contextmanager
def _libtiff_messages(path: Path, data: bytes | None = None) -> Iterator[None]:
    """While a TIFF is read, what libtiff prints on the process's stderr becomes one :class:`LibraryWarning`.

    libtiff writes its warnings and errors straight to file descriptor 2, past Python, so a bad
    TIFF would spill dozens of lines before vtcodec's one-line error. Other formats pass untouched.
    """
    try:
        if data is not None:
            is_tiff = data[:4] in _TIFF_MAGIC
        else:
            with path.open("rb") as fh:
                is_tiff = fh.read(4) in _TIFF_MAGIC
    except OSError:
        is_tiff = False
    if not is_tiff:
        yield
        return
    with _stderr_lock, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            said = sink.read().decode("utf-8", "replace").strip()
            if said:
                warnings.warn(f"{path}: libtiff: {' / '.join(said.splitlines())}", LibraryWarning, stacklevel=3)


def _read(path: Path, frame: int | None, convert, warn_frames: bool = True, data: bytes | None = None):
    if data is None:
        check_readable(path)
    try:
        with _libtiff_messages(path, data), Image.open(path if data is None else io.BytesIO(data)) as img:
            refused = too_many_pixels(*img.size)
            if refused is not None:
                raise InputError(f"refused, too many pixels: {refused}")
            frames = getattr(img, "n_frames", 1)
            if frame is not None:
                if not 0 <= frame < frames:
                    raise InputError(f"{path}: no frame {frame} (the file has {frames})")
                img.seek(frame)
            elif frames > 1 and warn_frames:
                warnings.warn(
                    f"{path}: only the first of {frames} frames is coded; --frame N (frame=N) picks another",
                    VtcodecWarning,
                    stacklevel=3,
                )
            img.load()
            out = convert(img)
            return out.copy() if out is img else out
    except InputError as exc:
        text = str(exc)
        raise InputError(text if text.startswith(str(path)) else f"{path}: {text}") from None
    except Image.DecompressionBombError as exc:
        raise InputError(f"{path}: refused, too many pixels ({exc})") from None
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image Pillow can read") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: cannot read image ({exc})") from None
    except (MemoryError, RecursionError):
        raise
    except Exception as exc:  # whatever else a Pillow plugin raises (NotImplementedError, struct.error, ...)
        raise InputError(f"{path}: cannot read image ({type(exc).__name__}: {exc})") from None


def image_format_for(path: Path) -> str:
    """The Pillow format name for an output suffix, or :class:`UsageError`."""
    Image.init()
    fmt = Image.EXTENSION.get(Path(path).suffix.lower())
    if fmt is None:
        raise UsageError(f"{path}: unknown image suffix {Path(path).suffix!r} (try .png)")
    return fmt


def _metadata_options(image: Image.Image, fmt: str) -> dict:
    """Pillow save options that carry ``image``'s profile, EXIF and XMP in ``fmt``, where it can hold them."""
    from PIL import PngImagePlugin  # only when writing PNG text chunks

    info, options = image.info, {}
    icc, exif, xmp = info.get("icc_profile"), info.get("exif"), info.get("xmp")
    if icc and fmt in ("PNG", "JPEG", "WEBP", "TIFF", "MPO"):
        options["icc_profile"] = icc
    if fmt in ("PNG", "JPEG", "WEBP", "MPO"):
        options.update({"exif": exif} if exif else {})
        if xmp and fmt == "PNG":
            text = PngImagePlugin.PngInfo()
            text.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8", "replace"))
            options["pnginfo"] = text
        elif xmp:
            options["xmp"] = xmp
    elif fmt == "TIFF":  # a TIFF's own tags: EXIF's first directory (no pointers to the others) and XMP
        tags = {}
        if exif:
            with contextlib.suppress(Exception):
                parsed = Image.Exif()
                parsed.load(exif)
                tags = {k: v for k, v in parsed.items() if k not in (0x8769, 0x8825, 0xA005, 0x014A)}
        options["tiffinfo"] = {**tags, **({700: xmp} if xmp else {})}
    return options


def image_file_bytes(image: Image.Image, path: Path) -> bytes:
    """``image`` encoded in the format ``path``'s suffix names, with its profile, EXIF and XMP where it can.

    Alpha goes where the format holds it; elsewhere (JPEG, PPM, ...) the image is
    composited over white, with a :class:`VtcodecWarning`.
    """
    fmt = image_format_for(path)
    options = _metadata_options(image, fmt)

    def encoded(img: Image.Image) -> bytes:
        buffer = io.BytesIO()
        img.save(buffer, format=fmt, **options)
        return buffer.getvalue()

    try:
        try:
            return encoded(image)
        except OSError:
            if image.mode != "RGBA":
                raise
            background = Image.new("RGBA", image.size, (255, 255, 255, 255))
            flat = Image.alpha_composite(background, image).convert("RGB")
            data = encoded(flat)
            warnings.warn(f"{path}: {fmt} holds no alpha; composited over white", VtcodecWarning, stacklevel=2)
            return data
    except (KeyError, ValueError, OSError, TypeError) as exc:
        raise InputError(f"{path}: cannot write this image format ({exc})") from None
