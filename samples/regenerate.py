"""Regenerate the golden .vtk files from the sample images with the shipped model.

    python samples/regenerate.py

Each golden ``NAME.vtk`` has ``NAME.tokens.json`` beside it: the model id, the image
size, the per-tile token counts and the tokens. tests/test_golden.py checks both
directions byte for byte (tokens -> bytes and bytes -> tokens). Run this only when
the shipped model or the format changes, and commit the results together.
``lighthouse-chunks`` carries one chunk of each kind (colour profile, EXIF, XMP, alpha);
its record lists them as hex. The ``*-layered`` and ``*-ladder`` goldens are format version 2
(their records say ``"format": 2`` and list the layers' ends); the others are version 1.
The ``v0-*`` … ``v3-*`` goldens are frozen: vtcodec wrote
them with the earlier default models (the repository's ``models/v0.safetensors`` …
``v3.safetensors``), and they must keep decoding; this script never rewrites them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import vtcodec
from vtcodec.codec import tokenize
from vtcodec.container import Coder
from vtcodec.imageio import open_image, prepare
from vtcodec.metadata import to_chunks
from vtcodec.pipeline import Layout, TokenImage, pack_tokens, read_tokens
from vtcodec.tile_grid import TileGrid

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from tests.icc import display_p3  # noqa: E402

VERSION_1 = Layout(1)  # the goldens of the current model that predate format version 2 stay version 1


def write_golden(name: str, tokens: TokenImage, counts: np.ndarray, model, chunks=(), layout=VERSION_1) -> Coder:
    data = pack_tokens(tokens, counts, model, chunks, layout)
    stream = read_tokens(data, model)
    (HERE / f"{name}.vtk").write_bytes(data)
    record = {
        "model_id": model.model_id.hex(),
        "width": tokens.grid.width,
        "height": tokens.grid.height,
        "counts": counts.tolist(),
        "tokens": [row[:c].tolist() for row, c in zip(stream.ids, counts, strict=True)],
        "coder": stream.header.coder.name.lower(),
    }
    if layout.version != 1:
        record["format"], record["layers"] = layout.version, list(stream.header.layers)
    if chunks:
        record["chunks"] = [[tag.decode("ascii"), payload.hex()] for tag, payload in chunks]
    (HERE / f"{name}.tokens.json").write_text(json.dumps(record) + "\n")
    print(f"{name}.vtk: {len(data)} bytes, coder {record['coder']}")
    return stream.header.coder


def main() -> None:
    model = vtcodec.load_model()
    parrots = tokenize(open_image(HERE / "parrots.png"), model)
    write_golden("parrots-t16", parrots, np.full(parrots.grid.count, 16), model)

    lighthouse = tokenize(open_image(HERE / "lighthouse.png"), model)
    k = model.config.max_tokens
    mixed = np.array([(0, 1, 7, 32, k, 64)[i % 6] for i in range(lighthouse.grid.count)])
    write_golden("lighthouse-mixed", lighthouse, mixed, model)

    # One chunk of each kind: a Display P3 profile, EXIF (orientation 6, applied), XMP and an alpha plane.
    cutout = Image.open(HERE / "lighthouse.png").convert("RGBA")
    yy, xx = np.mgrid[: cutout.height, : cutout.width]
    radius = np.hypot((yy - cutout.height / 2) / cutout.height, (xx - cutout.width / 2) / cutout.width)
    cutout.putalpha(Image.fromarray(np.clip((0.45 - radius) * 2550, 0, 255).astype(np.uint8), "L"))
    exif = Image.Exif()
    exif[0x0112], exif[0x010F] = 6, "vtcodec golden"
    cutout.info.update(icc_profile=display_p3(), exif=exif.tobytes(), xmp=b'<x:xmpmeta xmlns:x="adobe:ns:meta/"/>')
    prepared = prepare(cutout, "all", "keep")
    chunked = tokenize(prepared.pixels, model)
    write_golden("lighthouse-chunks", chunked, np.full(chunked.grid.count, 8), model, to_chunks(prepared.extras))

    # Uniformly random tokens cost more under the prior than raw packing: the raw coder's golden.
    rng = np.random.default_rng(7)
    grid = TileGrid(20, 10, model.config.tile_size)
    noise = TokenImage(grid, rng.integers(0, model.codebook_size, (grid.count, k)))
    coder = write_golden("noise-raw", noise, np.full(grid.count, 24), model)
    assert coder == Coder.RAW, "expected the raw coder for uniformly random tokens"

    # Format version 2: layers at the default ladder, at a ladder of one's own, and raw-coded layers.
    write_golden("parrots-t64-layered", parrots, np.full(parrots.grid.count, 64), model, layout=Layout())
    write_golden("lighthouse-mixed-layered", lighthouse, mixed, model, layout=Layout())
    write_golden("parrots-t40-ladder", parrots, np.full(parrots.grid.count, 40), model, layout=Layout(2, (1, 2, 3, 10)))
    write_golden("noise-raw-layered", noise, np.full(grid.count, 24), model, layout=Layout())


if __name__ == "__main__":
    main()
