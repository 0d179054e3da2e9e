"""Golden files pin the bitstream: tokens -> bytes and bytes -> tokens, byte for byte.

``v0-*`` files were written by vtcodec 0.1 with the first shipped model (coders 0
and 1), ``v1-*``, ``v2-*`` and ``v3-*`` files with the later defaults (coder 2); they must keep
decoding, and re-encoding their tokens with their model must still give the same
bytes. The others come from the current default model.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from vtcodec import container, registry
from vtcodec.codec import render
from vtcodec.decoders import decoder_names
from vtcodec.pipeline import DEFAULT_LAYOUT, Layout, TokenImage, pack_tokens, read_tokens
from vtcodec.tile_grid import TileGrid
from vtcodec.zoo import find_model

from .conftest import LEGACY, ROOT, SAMPLES, installed

FROZEN = ("v0", "v1", "v2", "v3")  # goldens written with earlier shipped models
GOLDEN = sorted(p.with_suffix("").with_suffix("") for p in SAMPLES.glob("*.tokens.json"))


def load(stem):
    record = json.loads(stem.with_suffix(".tokens.json").read_text())
    if not installed(record["model_id"]):
        pytest.skip(f"model {record['model_id']} of {stem.name} is not installed (the repository's models/)")
    data = stem.with_suffix(".vtk").read_bytes()
    return record, data


def test_golden_files_exist():
    names = {"parrots-t16", "lighthouse-mixed", "noise-raw"}
    layered = {"parrots-t64-layered", "lighthouse-mixed-layered", "parrots-t40-ladder", "noise-raw-layered"}
    frozen = {f"{v}-{name}" for name in names for v in FROZEN}
    assert {p.name for p in GOLDEN} >= names | frozen | {"lighthouse-chunks"} | layered


def test_layered_goldens_are_version_2_and_every_layer_cut_decodes_to_a_prefix():
    for stem in [s for s in GOLDEN if s.name.endswith(("-layered", "-ladder"))]:
        record, data = load(stem)
        stream = read_tokens(data)
        assert stream.header.version == record["format"] == 2 and list(stream.header.layers) == record["layers"]
        parsed = container.parse(data)
        for k, offset in enumerate(parsed.layer_offsets[:-1], start=1):
            part = read_tokens(data[:offset])
            end = record["layers"][k - 1]
            assert part.cut is not None and part.cut.layers == k and part.cut.tokens == end
            for row, count, expected in zip(part.ids, record["counts"], record["tokens"], strict=True):
                assert row[: min(count, end)].tolist() == expected[:end]
            assert read_tokens(container.cut(parsed, k)).ids.tolist() == part.ids.tolist()


@pytest.mark.parametrize("stem", GOLDEN, ids=lambda p: p.name)
def test_bytes_to_tokens(stem):
    record, data = load(stem)
    stream = read_tokens(data)
    assert stream.header.model_id.hex() == record["model_id"]
    assert (stream.header.width, stream.header.height) == (record["width"], record["height"])
    assert stream.header.token_counts.tolist() == record["counts"]
    assert stream.header.coder.name.lower() == record["coder"]
    for row, count, expected in zip(stream.ids, record["counts"], record["tokens"], strict=True):
        assert row[:count].tolist() == expected
    assert [[t.decode(), d.hex()] for t, d in stream.header.chunks] == record.get("chunks", [])


@pytest.mark.parametrize("stem", GOLDEN, ids=lambda p: p.name)
def test_tokens_to_bytes(stem):
    record, data = load(stem)
    model = find_model(bytes.fromhex(record["model_id"]))
    grid = TileGrid(record["width"], record["height"], model.config.tile_size)
    ids = np.zeros((grid.count, model.config.max_tokens), dtype=np.int64)
    for i, tokens in enumerate(record["tokens"]):
        ids[i, : len(tokens)] = tokens
    chunks = tuple((tag.encode(), bytes.fromhex(payload)) for tag, payload in record.get("chunks", []))
    layout = Layout(record.get("format", 1), tuple(record.get("layers", ())) or DEFAULT_LAYOUT.ladder)
    assert pack_tokens(TokenImage(grid, ids), np.array(record["counts"]), model, chunks, layout) == data


def test_the_chunk_golden_carries_every_kind_of_chunk():
    stream = read_tokens((SAMPLES / "lighthouse-chunks.vtk").read_bytes())
    assert [tag for tag, _ in stream.header.chunks] == [b"iccp", b"exif", b"xmp ", b"alph"]
    extras = stream.extras
    assert extras.icc[36:40] == b"acsp" and extras.xmp.startswith(b"<x:xmpmeta")
    exif = Image.Exif()
    exif.load(b"Exif\x00\x00" + extras.exif)
    assert exif[0x0112] == 1 and exif[0x010F] == "vtcodec golden"  # the rotation was applied
    h, w = extras.alpha.shape
    assert (w, h) == (stream.header.width, stream.header.height) and extras.alpha.min() == 0
    assert extras.alpha.max() == 255


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", ["lighthouse-mixed"] + [f"{v}-lighthouse-mixed" for v in FROZEN])
def test_decoded_tokens_do_not_depend_on_torch_threads(threads, name):
    code = (
        "import sys, torch, json, vtcodec; torch.set_num_threads(int(sys.argv[1])); "
        "s = vtcodec.read_tokens(open(sys.argv[2], 'rb').read()); "
        "print(json.dumps([r[:c].tolist() for r, c in zip(s.ids, s.header.token_counts)]))"
    )
    stem = SAMPLES / name
    record, _ = load(stem)
    out = subprocess.run(
        [sys.executable, "-c", code, str(threads), str(stem.with_suffix(".vtk"))],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=120,
        env={**os.environ, "VTCODEC_MODEL_DIR": str(LEGACY)},
    )
    assert json.loads(out.stdout) == record["tokens"]


@pytest.mark.parametrize("stem", [s for s in GOLDEN if not s.name.startswith(FROZEN)], ids=lambda p: p.name)
def test_golden_files_decode_with_every_decoder_of_their_model(stem):
    record, data = load(stem)
    stream = read_tokens(data)
    names = decoder_names(stream.model)
    assert {"attention", "perceptual"} <= set(names)  # the default model's shipped decoders
    for name in names:
        entry = next((e for e in registry.load_manifest().decoders_of(stream.model.model_id) if e.name == name), None)
        if entry is not None and registry.locate(entry) is None:
            continue  # a decoder that is not installed here (legacy ones live in models/)
        image = render(stream, decoder=name)
        assert image.size == (record["width"], record["height"])


def test_a_layered_golden_cut_at_every_byte_gives_its_complete_layers_or_says_truncated():
    record, data = load(SAMPLES / "parrots-t64-layered")
    full = read_tokens(data)
    offsets = container.parse(data).layer_offsets
    for offset in range(len(data)):
        try:
            part = read_tokens(data[:offset])
        except container.FormatError as exc:
            assert offset < offsets[0] and ("truncated" in str(exc) or "magic" in str(exc))
            continue
        held = sum(end <= offset for end in offsets)
        limit = record["layers"][held - 1] if held else 0
        assert part.cut.layers == held and part.ids.shape[1] == limit
        assert (part.ids == full.ids[:, :limit]).all()
