"""Hostile files and failing disks: bounded decoding, no code from checkpoints, one-line errors everywhere.

Each reproduction of the reliability pass of 2026-12-05 is a test here; their time and peak
memory at full size are measured by ``benchmarks/hostile_files.py``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

import vtcodec
from vtcodec import container, entropy, metadata
from vtcodec.errors import FormatError, InputError
from vtcodec.imageio import open_prepared
from vtcodec.pipeline import Layout, TileEncoder, read_tokens, tokenize_pixels
from vtcodec.zoo import load_model

from .conftest import ROOT, SAMPLES, SHARED, assert_one_line_error, image_folder, random_image
from .test_fuzz import with_metadata


def declared(model_id: bytes, width: int, height: int, tile: int, count: int, chunks=(), payload=b"") -> bytes:
    """A file that declares ``width x height`` pixels, ``count`` tokens per tile, and holds ``payload``."""
    tiles = container.TileGrid(width, height, tile).count
    counts = np.full(tiles, count, dtype=np.int64)
    header = container.Header(model_id, width, height, tile, counts, container.Coder.CONTEXT, chunks=tuple(chunks))
    return container.pack(header, payload)


# --- 1. decoding limits -------------------------------------------------------------------------


def test_a_24_byte_file_declaring_13377_squared_pixels_is_refused_before_any_work(
    cli_run, tiny_model, tiny_model_path, tmp_path, monkeypatch
):
    bomb = tmp_path / "bomb.vtk"
    bomb.write_bytes(declared(tiny_model.model_id, 13377, 13377, 32, 0))
    assert len(bomb.read_bytes()) < 40
    monkeypatch.setattr(entropy, "decode_stream", lambda *a: pytest.fail("entropy decoding ran"))
    for command in (["decode", bomb, "-o", tmp_path / "b.png"], ["info", bomb]):
        code, _, err = cli_run(*command, "--model", tiny_model_path)
        assert code == 3
        assert_one_line_error(code, err)
        assert "13377x13377 is more than 67108864 pixels" in err and "--max-pixels" in err
    assert not (tmp_path / "b.png").exists()


def test_the_pixel_limit_is_vtcodec_max_pixels_and_covers_encoding(tiny_model, monkeypatch):
    image = random_image(60, 50)
    monkeypatch.setattr(vtcodec, "MAX_PIXELS", 2999)
    with pytest.raises(InputError, match="60x50 is more than 2999 pixels"):
        vtcodec.compress(image, 2, model=tiny_model)
    monkeypatch.setattr(vtcodec, "MAX_PIXELS", 3000)
    data = vtcodec.compress(image, 2, model=tiny_model)
    monkeypatch.setattr(vtcodec, "MAX_PIXELS", 2999)
    with pytest.raises(FormatError, match="more than 2999 pixels"):
        vtcodec.decompress(data, model=tiny_model)
    monkeypatch.setattr(vtcodec, "MAX_PIXELS", None)
    assert vtcodec.decompress(data, model=tiny_model).size == (60, 50)


def test_an_image_file_over_the_limit_is_refused_before_its_pixels_are_read(cli_run, tiny_model_path, tmp_path):
    random_image(120, 100).save(tmp_path / "big.png")
    code, _, err = cli_run("encode", tmp_path / "big.png", "-o", tmp_path / "big.vtk", "--max-pixels", 11999)
    assert_one_line_error(code, err)
    assert "too many pixels: 120x100 is more than 11999 pixels" in err


def alpha_bomb(model_id: bytes, side: int, tile: int) -> bytes:
    """A file whose alpha chunk inflates to a ``side x side`` plane (left filter, all ones: a ramp)."""
    plane = zlib.compress(b"\x01" * (side * side), 9)
    return declared(model_id, side, side, tile, 0, [(metadata.ALPHA, bytes([1, 1]) + plane)])


def test_info_never_inflates_the_alpha_plane(cli_run, tiny_model, tiny_model_path, tmp_path, monkeypatch):
    path = tmp_path / "alpha.vtk"
    path.write_bytes(alpha_bomb(tiny_model.model_id, 4096, 512))
    monkeypatch.setattr(metadata, "_unpack_alpha", lambda *a: pytest.fail("info inflated the alpha plane"))
    code, out, err = cli_run("info", path, "--json", "--model", tiny_model_path)
    assert code == 0, err
    (record,) = json.loads(out)["chunks"]
    assert record["item"] == "alpha" and record["size"] == 4096 * 4096


def test_the_alpha_filter_is_undone_in_one_plane_of_memory(tiny_model):
    side = 2048
    data = alpha_bomb(tiny_model.model_id, side, 512)
    header, _ = container.unpack(data)
    tracemalloc.start()
    extras = metadata.from_chunks(header.chunks, side, side)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2.5 * side * side  # the inflated bytes and the plane; uint64 sums took 9 planes
    assert extras.alpha.dtype == np.uint8
    assert extras.alpha[0, :5].tolist() == [1, 2, 3, 4, 5] and extras.alpha[0, 255] == 0  # wraps mod 256


# --- 2. payload accounting ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def coded(tiny_model):
    """A format version 1 file (one payload; version 2's layers: tests/test_layers.py)."""
    return vtcodec.compress(random_image(96, 64, seed=3), 6, model=tiny_model, layout=Layout(1))


def test_a_payload_shorter_than_its_token_counts_is_corrupt(coded, tiny_model, cli_run, tiny_model_path, tmp_path):
    header, payload = container.unpack(coded)
    taller = dataclasses.replace(
        header, height=2 * header.height, token_counts=np.full(2 * header.token_counts.size, 6)
    )
    path = tmp_path / "taller.vtk"
    path.write_bytes(container.pack(taller, payload))
    with pytest.raises(FormatError, match="payload does not hold its token counts"):
        read_tokens(path.read_bytes(), tiny_model)
    code, _, err = cli_run("decode", path, "-o", tmp_path / "t.png", "--model", tiny_model_path)
    assert code == 3 and "corrupt file: payload" in err
    assert_one_line_error(code, err)


@pytest.mark.parametrize("change", ["cut", "extended"])
def test_a_payload_that_is_not_the_coding_of_its_tokens_is_corrupt(coded, tiny_model, change):
    header, payload = container.unpack(coded)
    assert read_tokens(coded, tiny_model).ids.shape[0] == header.token_counts.size
    changed = payload[:-1] if change == "cut" else payload + b"\x01"
    with pytest.raises(FormatError, match="corrupt file: payload"):
        read_tokens(container.pack(header, changed), tiny_model)


# --- 3. no unpickling ---------------------------------------------------------------------------


class _Payload:
    """Pickled, it asks the loader to create a folder: proof that the loader ran code from the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_no_torch_load_without_weights_only_in_the_package():
    offenders = []
    for path in (ROOT / "vtcodec").rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "torch.load(" in line and "weights_only=True" not in line:
                offenders.append(f"{path.relative_to(ROOT)}:{number}")
    assert offenders == []


@pytest.mark.parametrize(
    "command",
    [
        ["train", "{data}", "--out", "{run}", "--resume", "--minutes", "0.01"],
        ["train", "{data}", "--out", "{run}", "--export-only"],
        ["train-decoder", "{data}", "--init", "{model}", "--out", "{run}", "--resume", "--minutes", "0.01"],
        ["train-decoder", "{data}", "--init", "{model}", "--out", "{run}", "--export-only"],
    ],
    ids=["train-resume", "train-export", "decoder-resume", "decoder-export"],
)
def test_a_planted_pickle_in_a_checkpoint_never_runs(command, cli_run, tiny_model_path, tmp_path):
    data, run = tmp_path / "data", tmp_path / "run"
    data.mkdir()
    run.mkdir()
    random_image(64, 64).save(data / "a.png")
    marker = tmp_path / "payload-ran"
    torch.save({"model": _Payload(marker), "step": 1}, run / "last.ckpt")
    args = [part.format(data=data, run=run, model=tiny_model_path) for part in command]
    code, _, err = cli_run(*args)
    assert not marker.exists()
    assert_one_line_error(code, err)
    assert "not a vtcodec training checkpoint" in err


# --- 4. architecture declared, checked, then built -----------------------------------------------


def _peak_rss_of(code: str) -> tuple[int, str]:
    """Run ``code`` in a fresh interpreter; its peak RSS (bytes) and its stderr.

    VmHWM, not getrusage's ru_maxrss: Linux carries the parent's (pytest's) peak across fork and exec.
    """
    peak = "next(line for line in open('/proc/self/status') if line.startswith('VmHWM:')).split()[1]"
    script = f"{code}\nimport sys\nprint({peak}, file=sys.stderr)"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    return int(done.stderr.strip().splitlines()[-1]) * 1024, done.stderr


def test_a_370_byte_decoder_file_cannot_ask_for_gigabytes(tiny_model, tmp_path):
    from vtcodec.decoders.files import DECODER_KEY, serialize_decoder

    real = serialize_decoder(tiny_model.model, "grid", tiny_model.model_id, "grid", 0)
    huge = {"decoder_blocks": [64] * 4, "decoder_hidden": [4096] * 4, "decoder_attention": 64}
    forged = with_metadata(real, DECODER_KEY, lambda meta: {**meta, "architecture": huge})
    path = tmp_path / "forged.decoder.safetensors"
    path.write_bytes(forged)
    with pytest.raises(InputError, match="more than 100000000"):
        vtcodec.load_decoder(tiny_model, path)
    # Within the bounds but not what the tensors are: refused before anything is built.
    small = {"decoder_blocks": [2] * 4, "decoder_hidden": [8] * 4, "decoder_attention": 0}
    path.write_bytes(with_metadata(real, DECODER_KEY, lambda meta: {**meta, "architecture": small}))
    with pytest.raises(InputError, match="tensors do not fit the declared architecture"):
        vtcodec.load_decoder(tiny_model, path)


def test_a_model_file_declaring_a_wide_network_is_refused_before_it_is_built(tiny_model_path, tmp_path):
    from vtcodec.registry import CONFIG_KEY

    wide = with_metadata(tiny_model_path.read_bytes(), CONFIG_KEY, lambda cfg: {**cfg, "channels": [4096] * 4})
    path = tmp_path / "wide.safetensors"
    path.write_bytes(wide)
    rss, err = _peak_rss_of(
        f"import vtcodec\ntry:\n    vtcodec.load_model({str(path)!r})\nexcept vtcodec.InputError as exc:\n"
        "    import sys; print(exc, file=sys.stderr)"
    )
    assert "not a valid vtcodec model file" in err and "parameters, more than" in err
    assert rss < 1.5e9  # importing torch takes about 0.3 GB; the network would take tens of GB


# --- 5. every error path is one line --------------------------------------------------------------


def _mount_tmpfs(path: Path, options: str) -> None:
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")


@pytest.fixture
def read_only_dir(tmp_path):
    path = tmp_path / "ro"
    _mount_tmpfs(path, "ro,size=1m")
    yield path
    subprocess.run(["umount", str(path)], check=False)


@pytest.fixture
def full_dir(tmp_path):
    path = tmp_path / "full"
    _mount_tmpfs(path, "size=64k")
    try:  # fill it up
        with (path / "filler").open("wb") as filler:
            while True:
                filler.write(b"\0" * 1024)
                filler.flush()
    except OSError:
        pass
    yield path
    subprocess.run(["umount", str(path)], check=False)


@pytest.fixture
def vtk_file(cli_run, tiny_model_path, tmp_path):
    random_image(70, 50).save(tmp_path / "pic.png")
    assert cli_run("encode", tmp_path / "pic.png", "-o", tmp_path / "pic.vtk", "--model", tiny_model_path)[0] == 0
    return tmp_path / "pic.vtk"


@pytest.mark.parametrize("where", ["read_only_dir", "full_dir"])
def test_every_single_file_command_says_one_line_on_a_failing_disk(where, request, cli_run, vtk_file, tiny_model_path):
    folder = request.getfixturevalue(where)
    before = sorted(p.name for p in folder.iterdir())
    model = ["--model", tiny_model_path]
    commands = [
        ["encode", vtk_file.with_suffix(".png"), "-o", folder / "x.vtk", "--tokens", "8", *model],
        ["decode", vtk_file, "-o", folder / "x.png", *model],
        ["truncate", vtk_file, "--tokens", "1", "-o", folder / "t.vtk", *model],
    ]
    for command in commands:
        code, _, err = cli_run(*command)
        assert code == 1
        assert_one_line_error(code, err)
        assert str(folder) in err and re.search("Read-only file system|No space left on device", err)
    assert sorted(p.name for p in folder.iterdir()) == before  # no partial output, no temporary left


def test_a_batch_into_a_read_only_folder_reports_each_file_and_goes_on(
    cli_run, read_only_dir, tiny_model_path, tmp_path
):
    inputs = image_folder(tmp_path / "in", 3, 40, 30)
    code, _, err = cli_run("encode", inputs, "-o", read_only_dir / "new", "-Q", "--model", tiny_model_path)
    assert code == 1 and "Traceback" not in err
    assert err.count("cannot create its folder (Read-only file system)") == 6  # as it happens, and in the summary
    assert "0 converted" in err and "3 failed" in err


def test_a_manifest_on_a_full_disk_is_one_line_and_fails_the_run(cli_run, tiny_model_path, tmp_path):
    inputs = image_folder(tmp_path / "in", 3, 40, 30)
    out = tmp_path / "out"
    code, _, err = cli_run("encode", inputs, "-o", out, "-Q", "--manifest", "/dev/full", "--model", tiny_model_path)
    assert code == 1 and "Traceback" not in err and "exception calling callback" not in err
    assert err.count("/dev/full: cannot write the manifest (No space left on device)") == 2  # once, and the summary
    assert len(list(out.glob("*.vtk"))) == 3  # the files themselves are written
    code, _, err = cli_run("encode", inputs, "-o", out, "--manifest", tmp_path / "in" / "0.png" / "m.jsonl")
    assert_one_line_error(code, err)
    assert "cannot write the manifest" in err


def bad_tiff() -> bytes:
    """An LZW TIFF whose strip is damaged: libtiff prints to the process's stderr, Pillow then fails."""
    import io

    buffer = io.BytesIO()
    random_image(50, 40).save(buffer, "TIFF", compression="tiff_lzw")
    data = bytearray(buffer.getvalue())
    data[200:400] = b"\xff" * 200
    return bytes(data)


def test_library_messages_wait_for_verbose(tiny_model_path, tmp_path):
    """Run as a process, since libtiff writes to file descriptor 2 itself."""
    (tmp_path / "bad.tif").write_bytes(bad_tiff())

    def encode(*extra: str) -> subprocess.CompletedProcess:
        args = ["encode", str(tmp_path / "bad.tif"), "-o", str(tmp_path / "bad.vtk"), "--model", str(tiny_model_path)]
        return subprocess.run([sys.executable, "-m", "vtcodec", *args, *extra], capture_output=True, text=True)

    quiet = encode()
    assert quiet.returncode == 1
    assert quiet.stderr.strip().splitlines() == [
        f"vtcodec: error: {tmp_path / 'bad.tif'}: cannot read image (decoder error -2)"
    ]
    verbose = encode("--verbose")
    assert verbose.returncode == 1
    assert verbose.stderr.splitlines()[0] == quiet.stderr.strip()
    assert "vtcodec: library warning: LibraryWarning:" in verbose.stderr and "libtiff" in verbose.stderr


# --- 6. the same image gives the same bytes ----------------------------------------------------------


def test_tokens_do_not_depend_on_the_batch():
    """bsds500/val 103070 once changed a token between --batch-size 1 and 32 (tiles arrived channels-last)."""
    model = load_model()
    paths = [*sorted(SAMPLES.glob("*.png"))]
    known = SHARED / "train" / "bsds500" / "val" / "103070.jpg"
    paths += [known] if known.exists() else []
    images = {p: open_prepared(p).pixels for p in paths}
    single = {p: tokenize_pixels(pixels, model).ids for p, pixels in images.items()}
    for batch_size in (1, 5, 32):
        batched: dict[Path, np.ndarray] = {}
        encoder = TileEncoder(model, batch_size, lambda key, tokens, into=batched: into.update({key: tokens.ids}))
        for p, pixels in images.items():
            encoder.add(p, pixels)
        encoder.flush()
        for p in paths:
            assert np.array_equal(batched[p], single[p]), (p.name, batch_size)


def test_batch_decode_tokens_and_bench_into_a_read_only_folder(cli_run, read_only_dir, vtk_file, tiny_model_path):
    model = ["--model", tiny_model_path]
    code, _, err = cli_run("decode", vtk_file.parent, "-o", read_only_dir / "png", "-Q", *model)
    assert code == 1 and "Traceback" not in err and "cannot create its folder (Read-only file system)" in err
    for command in (
        ["tokens", vtk_file, "-o", read_only_dir / "shards", "-Q", *model],
        ["bench", vtk_file.parent, "--out", read_only_dir / "bench", "--codecs", "vtcodec", *model],
    ):
        code, _, err = cli_run(*command)
        assert_one_line_error(code, err)
        assert "cannot create the folder (Read-only file system)" in err
