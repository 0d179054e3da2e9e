"""Reading images into RGB under one documented policy.

Policy (applied in this order):

1. EXIF orientation is applied (``ImageOps.exif_transpose``). An EXIF block that
   Pillow cannot parse leaves the pixels unrotated, with a :class:`VtcodecWarning`.
2. Transparency (RGBA, LA, PA, and P or RGB/L with a ``transparency`` entry) is
   composited over white; the alpha channel itself is not stored.
3. 16- and 32-bit integer modes (``I;16*``, ``I``) are scaled to 8 bits by their
   nominal range (65535 for ``I;16``; 0..65535 clipped for ``I``); float ``F`` is
   taken as 0..1 if its maximum is at most 1, else clipped to 0..255.
4. Everything else (L, 1, P, CMYK, YCbCr, LAB, HSV) goes through Pillow's ``convert("RGB")``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vtcodec.errors import InputError, VtcodecWarning
from vtcodec.fileio import check_readable

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"})


def _oriented(img: Image.Image) -> Image.Image:
    """``img`` with its EXIF orientation applied; unrotated, with a warning, if the EXIF is unreadable."""
    try:
        return ImageOps.exif_transpose(img)
    except Exception as exc:  # Pillow's EXIF parser raises SyntaxError, struct.error, ValueError, ...
        warnings.warn(
            f"unreadable EXIF block ({type(exc).__name__}: {exc}); pixels coded without rotation",
            VtcodecWarning,
            stacklevel=3,
        )
        img = img.copy()
        img.info.pop("exif", None)  # so that no later step trips over it again
        return img


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow image to 8-bit RGB under the module policy."""
    img = _oriented(img)
    if img.mode == "P" or (img.mode in ("RGB", "L") and "transparency" in img.info):
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    if img.mode.startswith("I;16") or img.mode == "I":
        values = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(np.round(values / 257.0), 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        values = np.asarray(img, dtype=np.float64)
        if values.size and np.nanmax(values) <= 1.0:
            values = values * 255.0
        img = Image.fromarray(np.clip(np.nan_to_num(np.round(values)), 0, 255).astype(np.uint8), "L")
    return img.convert("RGB")


def open_image(path: str | Path) -> Image.Image:
    """Open and fully load an image file as RGB, or raise :class:`InputError`."""
    path = Path(path)
    check_readable(path)
    try:
        with Image.open(path) as img:
            img.load()
            return to_rgb(img)
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
