"""Pillow plugin: after ``import vtcodec``, ``Image.open("x.vtk")`` and ``img.save("x.vtk")`` work.

Saving takes one target keyword: ``quality=`` (0 … 100, as Pillow's WebP and AVIF
plugins take it), ``tokens=``, ``bytes=``, ``bpp=`` or ``psnr=``
(and optionally ``model=`` a model file path, ``metadata=`` and ``alpha=`` as for
:func:`vtcodec.compress`). An opened file with an alpha plane is RGBA; its kept
colour profile, EXIF and XMP are in ``info`` as Pillow's own plugins put them.
"""

from __future__ import annotations

from typing import IO

from PIL import Image, ImageFile

from vtcodec import container
from vtcodec.metadata import DEFAULT_METADATA, EXIF_PREFIX, from_chunks

FORMAT = "VTK"
MIME = "image/x-vtk"


def _accept(prefix: bytes) -> bool:
    return prefix[: len(container.MAGIC)] == container.MAGIC


class VtkImageFile(ImageFile.ImageFile):
    """Reads ``.vtk`` files; pixels are decoded on ``load()``."""

    format = FORMAT
    format_description = "vtcodec learned image"

    def _open(self) -> None:
        data = self.fp.read()
        # verifies magic, version, lengths and checks; a cut version 2 file only as Pillow allows truncated images
        parsed = container.parse(data, partial=ImageFile.LOAD_TRUNCATED_IMAGES)
        header = parsed.header
        extras = from_chunks(header.chunks, header.width, header.height)
        self._vtk_data: bytes | None = data
        self._size = (header.width, header.height)
        grey = extras.tone is not None and extras.tone.grey
        self._mode = ("L" if grey else "RGB") + ("" if extras.alpha is None else "A")
        self.info["tokens_per_tile"] = header.token_counts.tolist()
        self.info["model_id"] = header.model_id.hex()
        if not parsed.complete:
            self.info["partial_layers"] = (len(parsed.payloads), len(header.layers))
        for key, value in (("icc_profile", extras.icc), ("xmp", extras.xmp)):
            if value:
                self.info[key] = value
        if extras.exif:
            self.info["exif"] = EXIF_PREFIX + extras.exif
        self.tile = []

    def load(self):  # type: ignore[override]
        if self._vtk_data is not None:
            # torch: only when the pixels are loaded (Image.open reads the header alone)
            from vtcodec.codec import decompress

            decoded = decompress(self._vtk_data)
            self._vtk_data = None
            self.im = decoded.im
        return Image.Image.load(self)


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    from vtcodec.codec import compress  # torch: only when saving (start-up time of `import vtcodec`)
    from vtcodec.pipeline import DEFAULT_LADDER, Layout

    info = im.encoderinfo
    layout = Layout(info.get("format_version", container.FORMAT_VERSION), tuple(info.get("layers", DEFAULT_LADDER)))
    data = compress(
        im,
        info.get("tokens"),
        max_bytes=info.get("bytes"),
        bpp=info.get("bpp"),
        psnr=info.get("psnr"),
        quality=info.get("quality"),
        model=info.get("model"),
        metadata=info.get("metadata", DEFAULT_METADATA),
        alpha=info.get("alpha", "keep"),
        layout=layout,
    )
    fp.write(data)


def register() -> None:
    Image.register_open(FORMAT, VtkImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, ".vtk")
    Image.register_mime(FORMAT, MIME)


register()
