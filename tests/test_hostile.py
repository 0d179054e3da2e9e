"""Hostile and odd inputs on encode, safe weights, and no data loss on a full disk."""

from __future__ import annotations

import errno
import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vtcodec
from vtcodec import fileio
from vtcodec.errors import InputError, UnknownModelError

from .conftest import assert_one_line_error, random_image

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def png_bomb(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width x height`` pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def saved(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def odd_images() -> dict[str, bytes]:
    rgb = random_image(40, 30, seed=1)
    gray16 = Image.fromarray(np.arange(40 * 30, dtype=np.uint16).reshape(30, 40) * 50)
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    palette.info["transparency"] = 0
    frames = [random_image(40, 30, seed=s) for s in range(3)]

    def animated(fmt: str, **kwargs) -> bytes:
        return saved(frames[0], fmt, save_all=True, append_images=frames[1:], **kwargs)

    return {
        "anim.webp": animated("WEBP"),
        "anim.png": animated("PNG"),
        "pages.tiff": animated("TIFF"),
        "bad-icc.jpg": saved(rgb, "JPEG", icc_profile=b"\x00" * 300),
        "cmyk-bad-icc.jpg": saved(rgb.convert("CMYK"), "JPEG", icc_profile=b"junk" * 40),
        "la-premultiplied.tiff": saved(rgb.convert("RGBA").convert("La").convert("LA"), "TIFF"),
        "16bit.png": saved(gray16, "PNG"),
        "cmyk.jpg": saved(rgb.convert("CMYK"), "JPEG"),
        "palette-alpha.png": saved(palette, "PNG", transparency=0),
        "la.png": saved(rgb.convert("LA"), "PNG"),
        "1x1.png": saved(random_image(1, 1), "PNG"),
        "1x5000.png": saved(random_image(1, 5000), "PNG"),
        "5000x1.png": saved(random_image(5000, 1), "PNG"),
    }


ODD_NAMES = [
    *("anim.webp", "anim.png", "pages.tiff", "bad-icc.jpg", "cmyk-bad-icc.jpg", "la-premultiplied.tiff"),
    *("16bit.png", "cmyk.jpg", "palette-alpha.png", "la.png", "1x1.png", "1x5000.png", "5000x1.png"),
]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_odd_images_encode_under_the_policy(name, cli_run, tiny_model_path, tmp_path):
    source = tmp_path / name
    source.write_bytes(odd_images()[name])
    with Image.open(source) as original:
        size = original.size
        assert name != "16bit.png" or original.mode.startswith("I")
    code, _, err = cli_run("encode", source, "-o", tmp_path / "x.vtk", "--model", tiny_model_path, "-Q")
    assert code == 0, err
    assert cli_run("decode", tmp_path / "x.vtk", "-o", tmp_path / "x.png", "--model", tiny_model_path)[0] == 0
    assert Image.open(tmp_path / "x.png").size == size


def _hostile(case: str, tmp_path: Path) -> Path:
    good = saved(random_image(64, 48, seed=2), "PNG")
    if case == "bomb":
        path = tmp_path / "bomb.png"
        path.write_bytes(png_bomb(60000, 60000))
    elif case == "truncated_png":
        path = tmp_path / "cut.png"
        path.write_bytes(good[: len(good) // 2])
    elif case == "truncated_jpeg":
        jpeg = saved(random_image(64, 48, seed=2), "JPEG")
        path = tmp_path / "cut.jpg"
        path.write_bytes(jpeg[: len(jpeg) // 2])
    elif case == "not_an_image":
        path = tmp_path / "data.png"
        path.write_bytes(os.urandom(2000))
    elif case == "path_through_a_file":
        (tmp_path / "file").write_bytes(good)
        path = tmp_path / "file" / "x.png"
    else:
        raise AssertionError(case)
    return path


@pytest.mark.parametrize("case", ["bomb", "truncated_png", "truncated_jpeg", "not_an_image", "path_through_a_file"])
def test_hostile_images_give_one_line_errors(case, cli_run, tiny_model_path, tmp_path):
    path = _hostile(case, tmp_path)
    code, _, err = cli_run("encode", path, "-o", tmp_path / "out.vtk", "--model", tiny_model_path)
    assert_one_line_error(code, err)
    assert not (tmp_path / "out.vtk").exists()
    if case == "bomb":
        assert "too many pixels" in err


@pytest.mark.skipif(IS_ROOT, reason="root bypasses file permissions")
def test_unreadable_file_and_unwritable_folder(cli_run, tiny_model_path, tmp_path):
    source = tmp_path / "secret.png"
    random_image(20, 20).save(source)
    source.chmod(0)
    code, _, err = cli_run("encode", source, "-o", tmp_path / "a.vtk", "--model", tiny_model_path)
    assert_one_line_error(code, err)
    readable = tmp_path / "ok.png"
    random_image(20, 20).save(readable)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    code, _, err = cli_run("encode", readable, "-o", locked / "a.vtk", "--model", tiny_model_path)
    assert_one_line_error(code, err)
    assert "permission denied" in err


def test_full_disk_gives_a_clear_error_and_no_partial_output(monkeypatch, cli_run, tiny_model_path, tmp_path):
    source = tmp_path / "pic.png"
    random_image(50, 50).save(source)

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fileio.os, "fsync", no_space)
    code, _, err = cli_run("encode", source, "-o", tmp_path / "out.vtk", "--model", tiny_model_path)
    assert_one_line_error(code, err)
    assert "No space left on device" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pic.png"]


def test_tampered_user_weights_change_the_model_id(tiny_model, tiny_model_path, tmp_path):
    data = vtcodec.compress(random_image(30, 30), 4, model=tiny_model)
    tampered = tmp_path / "tampered.safetensors"
    raw = bytearray(tiny_model_path.read_bytes())
    raw[-2] ^= 0x40
    tampered.write_bytes(bytes(raw))
    with pytest.raises((UnknownModelError, InputError)):  # another id, or not even a valid model
        vtcodec.decompress(data, model=tampered)


def test_max_pixels_option_refuses_and_lifts(monkeypatch, cli_run, tiny_model_path, tmp_path):
    from PIL import Image as PILImage

    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", PILImage.MAX_IMAGE_PIXELS)  # restored after the test
    source = tmp_path / "pic.png"
    random_image(60, 50).save(source)
    model = ["--model", tiny_model_path]
    code, _, err = cli_run("encode", source, "-o", tmp_path / "a.vtk", "--max-pixels", 1000, *model)
    assert_one_line_error(code, err)
    assert "too many pixels" in err
    assert cli_run("encode", source, "-o", tmp_path / "a.vtk", "--max-pixels", 0, *model)[0] == 0
    code, _, err = cli_run("decode", tmp_path / "a.vtk", "-o", tmp_path / "a.png", "--max-pixels", 1000, *model)
    assert code == 3 and "more than 1000 pixels" in err
    assert cli_run("decode", tmp_path / "a.vtk", "-o", tmp_path / "a.png", "--max-pixels", 0, *model)[0] == 0


def test_permission_errors_are_one_line_even_as_root(monkeypatch, cli_run, tiny_model_path, tmp_path):
    """Simulates what `chmod 000` does for an ordinary user (root bypasses permissions)."""
    import tempfile

    from PIL import Image as PILImage

    source = tmp_path / "pic.png"
    random_image(30, 30).save(source)
    real_open = PILImage.open

    def denied_open(fp, *args, **kwargs):
        if str(fp) == str(source):
            raise PermissionError(13, "Permission denied", str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(PILImage, "open", denied_open)
    code, _, err = cli_run("encode", source, "-o", tmp_path / "a.vtk", "--model", tiny_model_path)
    assert_one_line_error(code, err)
    assert "permission denied" in err
    monkeypatch.setattr(PILImage, "open", real_open)

    def denied_mkstemp(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied_mkstemp)
    code, _, err = cli_run("encode", source, "-o", tmp_path / "locked" / "a.vtk", "--model", tiny_model_path)
    assert_one_line_error(code, err)
    assert not (tmp_path / "a.vtk").exists()


def test_unreadable_exif_codes_the_pixels_unrotated_with_a_warning(monkeypatch, cli_run, tiny_model_path, tmp_path):
    from PIL import ImageOps

    random_image(40, 30).save(tmp_path / "photo.jpg", quality=95)

    def broken_exif(_image):
        raise SyntaxError("not a TIFF file")  # what Pillow's EXIF parser raises on a corrupt block

    monkeypatch.setattr(ImageOps, "exif_transpose", broken_exif)
    code, _, err = cli_run("encode", tmp_path / "photo.jpg", "-o", tmp_path / "p.vtk", "--model", tiny_model_path)
    assert code == 0, err
    assert err.count("vtcodec: warning: unreadable EXIF block (SyntaxError: not a TIFF file)") == 1
    assert "Traceback" not in err
    assert vtcodec.decompress((tmp_path / "p.vtk").read_bytes(), model=tiny_model_path).size == (40, 30)


@pytest.mark.parametrize("error", [NotImplementedError("DXT format 99"), struct.error("unpack")])
def test_any_pillow_failure_is_a_one_line_error(error, monkeypatch, cli_run, tiny_model_path, tmp_path):
    from PIL import Image as PILImage

    random_image(20, 20).save(tmp_path / "odd.png")

    def fails(*_args, **_kwargs):
        raise error

    monkeypatch.setattr(PILImage.Image, "load", fails)
    code, _, err = cli_run("encode", tmp_path / "odd.png", "-o", tmp_path / "o.vtk", "--model", tiny_model_path)
    assert_one_line_error(code, err)
    assert f"cannot read image ({type(error).__name__}" in err
