"""Colour profiles, metadata, alpha and frames: what travels beside the tokens (issue 22)."""

import dataclasses
import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms

import vtcodec
from vtcodec import container
from vtcodec.codec import truncate
from vtcodec.errors import FormatError, InputError, VtcodecError, VtcodecWarning
from vtcodec.imageio import image_file_bytes, prepare, read_image
from vtcodec.metadata import Extras, from_chunks, parse_metadata, reset_orientation, to_chunks
from vtcodec.pipeline import Layout, read_tokens

from .conftest import assert_one_line_error, random_image
from .icc import adobe_rgb, display_p3

SRGB = ImageCms.createProfile("sRGB")
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></x:xmpmeta>'


def tagged(profile: bytes, width: int = 96, height: int = 64) -> tuple[Image.Image, Image.Image]:
    """(the sRGB original, the same colours stored in ``profile``'s values with the profile attached)."""
    original = random_image(width, height, seed=5)
    target = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    converted = ImageCms.profileToProfile(original, SRGB, target, outputMode="RGB")
    converted.info["icc_profile"] = profile
    return original, converted


def as_srgb(image: Image.Image) -> np.ndarray:
    """What a colour-managed viewer shows: the pixels converted from their profile (sRGB if none)."""
    profile = image.info.get("icc_profile")
    if profile:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        image = ImageCms.profileToProfile(image.convert("RGB"), source, SRGB, outputMode="RGB")
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def rotated_jpeg(orientation: int = 6) -> tuple[bytes, Image.Image]:
    exif = Image.Exif()
    exif[0x0112], exif[0x010F], exif[0x0110] = orientation, "vtcodec", "test camera"
    source = random_image(80, 48, seed=9)
    buffer = io.BytesIO()
    source.save(buffer, "JPEG", quality=95, exif=exif.tobytes(), xmp=XMP)
    return buffer.getvalue(), source


def cutout(width: int = 70, height: int = 50) -> Image.Image:
    image = random_image(width, height, seed=3).convert("RGBA")
    alpha = np.zeros((height, width), dtype=np.uint8)
    alpha[8:40, 10:60] = 255
    alpha[8:40, 10] = 128  # a soft edge
    alpha[20, 20:30] = np.arange(10) * 25
    image.putalpha(Image.fromarray(alpha, "L"))
    return image


# --- colour ---------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", [display_p3(), adobe_rgb()], ids=["display-p3", "adobe-rgb"])
def test_a_profile_not_kept_is_converted_to_srgb(profile):
    original, image = tagged(profile)
    before = np.abs(np.asarray(image, dtype=np.int16) - np.asarray(original, dtype=np.int16))
    prepared = prepare(image)  # the default keeps no metadata
    after = np.abs(prepared.pixels.astype(np.int16) - np.asarray(original, dtype=np.int16))
    assert prepared.extras.icc is None and prepared.converted
    assert after.max() <= 6 and after.mean() < 0.5 < before.mean()  # 8-bit rounding in the other space


@pytest.mark.parametrize("profile", [display_p3(), adobe_rgb()], ids=["display-p3", "adobe-rgb"])
def test_a_kept_profile_round_trips_with_its_pixels(tiny_model, profile):
    _, image = tagged(profile)
    prepared = prepare(image, "icc")
    assert prepared.extras.icc == profile and np.array_equal(prepared.pixels, np.asarray(image))
    decoded = vtcodec.decompress(vtcodec.compress(image, 8, model=tiny_model, metadata="icc"), model=tiny_model)
    assert decoded.info["icc_profile"] == profile
    png = Image.open(io.BytesIO(image_file_bytes(decoded, "x.png")))
    assert png.info["icc_profile"] == profile


def test_grey_pixels_under_an_rgb_profile_are_converted_even_when_kept():
    gray_pixels = Image.new("L", (8, 8), 100)
    gray_pixels.info["icc_profile"] = adobe_rgb()  # a photo turned grey that kept its RGB profile
    with warnings.catch_warnings():
        warnings.simplefilter("error", VtcodecWarning)
        prepared = prepare(gray_pixels, "icc")
    assert prepared.extras.icc is None and prepared.converted
    r, g, b = (int(v) for v in prepared.pixels[0, 0])
    assert max(r, g, b) - min(r, g, b) <= 1 and abs(r - 100) <= 6  # still grey, through the other tone curve


def test_a_broken_profile_is_dropped_with_a_warning():
    image = random_image(16, 16)
    image.info["icc_profile"] = b"\x00" * 200
    with pytest.warns(VtcodecWarning, match="unusable colour profile"):
        prepared = prepare(image)
    assert np.array_equal(prepared.pixels, np.asarray(image))


# --- metadata -------------------------------------------------------------------------------


def test_metadata_option_parsing():
    assert parse_metadata("all") == {"icc", "exif", "xmp"}
    assert parse_metadata("none") == frozenset() == parse_metadata("")
    assert parse_metadata("exif, XMP") == {"exif", "xmp"}
    with pytest.raises(InputError, match="unknown metadata 'gps'"):
        parse_metadata("exif,gps")


def test_exif_and_xmp_round_trip_with_the_orientation_applied(tiny_model):
    jpeg, source = rotated_jpeg(6)
    image = Image.open(io.BytesIO(jpeg))
    original_exif = image.info["exif"][6:]
    data = vtcodec.compress(image, 8, model=tiny_model, metadata="all")
    decoded = vtcodec.decompress(data, model=tiny_model)
    assert decoded.size == (source.height, source.width)  # rotated once, here
    exif = decoded.info["exif"]
    assert exif.startswith(b"Exif\x00\x00") and decoded.getexif()[0x0112] == 1
    changed = [i for i, (a, b) in enumerate(zip(exif[6:], original_exif, strict=True)) if a != b]
    assert len(exif) - 6 == len(original_exif) and len(changed) == 1  # only the orientation value
    assert decoded.getexif()[0x010F] == "vtcodec" and decoded.info["xmp"] == XMP
    for suffix in (".png", ".jpg", ".webp", ".tiff"):
        written = Image.open(io.BytesIO(image_file_bytes(decoded, f"x{suffix}")))
        exif = written.getexif()  # a TIFF's own tags hold its EXIF; orientation 1 is their default
        assert exif.get(0x0112, 1) == 1 and exif.get(0x010F) == "vtcodec", suffix
        assert written.info.get("xmp") == XMP, suffix


def test_metadata_is_not_kept_by_default_and_says_what_was_dropped():
    image = Image.open(io.BytesIO(rotated_jpeg()[0]))
    prepared = prepare(image)
    assert prepared.extras == Extras() and set(prepared.dropped) == {"exif", "xmp"}
    assert prepared.pixels.shape[:2] == (80, 48)  # the rotation is applied all the same


def test_reset_orientation_changes_only_the_orientation():
    for order in ("<", ">"):
        magic = b"II*\x00" if order == "<" else b"MM\x00*"
        entries = [(0x010F, 2, 4, b"abc\x00"), (0x0112, 3, 1, struct.pack(order + "HH", 8, 0))]
        body = magic + struct.pack(order + "I", 8) + struct.pack(order + "H", len(entries))
        for tag, kind, n, value in entries:
            body += struct.pack(order + "HHI", tag, kind, n) + value
        body += b"\x00" * 4
        out = reset_orientation(body)
        assert len(out) == len(body) and sum(a != b for a, b in zip(out, body, strict=True)) == 1
        assert struct.unpack(order + "H", out[8 + 2 + 12 + 8 : 8 + 2 + 12 + 10]) == (1,)
    with pytest.raises(ValueError):
        reset_orientation(b"not a tiff")


def test_budgets_count_the_metadata(tiny_model):
    image = Image.open(io.BytesIO(rotated_jpeg()[0]))
    bare = len(vtcodec.compress(image, 0, model=tiny_model))
    full = len(vtcodec.compress(image, 0, model=tiny_model, metadata="all"))
    with pytest.raises(InputError, match=f"{full} bytes, {full - bare} of them for the colour profile"):
        vtcodec.compress(image, max_bytes=full - 1, model=tiny_model, metadata="all")
    data = vtcodec.compress(image, max_bytes=full + 40, model=tiny_model, metadata="all")
    assert len(data) <= full + 40 and read_tokens(data, tiny_model).extras.xmp == XMP


def test_truncation_keeps_every_chunk(tiny_model):
    data = vtcodec.compress(cutout(), 8, model=tiny_model, metadata="all")
    smaller = truncate(data, tokens=2, model=tiny_model)
    assert container.unpack(smaller)[0].chunks == container.unpack(data)[0].chunks
    budget = (len(truncate(data, tokens=0, model=tiny_model)) + len(data)) // 2
    smaller = truncate(data, max_bytes=budget, model=tiny_model)
    assert len(smaller) <= budget and container.unpack(smaller)[0].chunks == container.unpack(data)[0].chunks


# --- alpha ----------------------------------------------------------------------------------


def test_alpha_round_trips_within_two_levels_and_exactly_when_lossless(tiny_model):
    image = cutout()
    original = np.asarray(image)[..., 3].astype(int)
    decoded = vtcodec.decompress(vtcodec.compress(image, 8, model=tiny_model), model=tiny_model)
    alpha = np.asarray(decoded)[..., 3].astype(int)
    assert decoded.mode == "RGBA" and np.abs(alpha - original).max() <= 2
    assert np.array_equal(alpha == 0, original == 0) and np.array_equal(alpha == 255, original == 255)
    exact = vtcodec.decompress(vtcodec.compress(image, 8, model=tiny_model, alpha="lossless"), model=tiny_model)
    assert np.array_equal(np.asarray(exact)[..., 3], original)
    written = Image.open(io.BytesIO(image_file_bytes(decoded, "x.png")))
    assert written.mode == "RGBA" and np.array_equal(np.asarray(written), np.asarray(decoded))


def test_every_alpha_value_and_filter_round_trips():
    rng = np.random.default_rng(4)
    planes = [
        np.arange(256, dtype=np.uint8).reshape(16, 16),
        np.tile(np.arange(0, 256, 5, dtype=np.uint8), (7, 1)),
        np.tile(np.arange(0, 256, 5, dtype=np.uint8)[:, None], (1, 9)),
        rng.integers(0, 256, (5, 300), dtype=np.uint8),
    ]
    for plane in planes:
        ((tag, data),) = to_chunks(Extras(alpha=plane))
        h, w = plane.shape
        assert tag == b"alph" and np.array_equal(from_chunks([(tag, data)], w, h).alpha, plane)
    bad = to_chunks(Extras(alpha=np.full((4, 4), 10, np.uint8)))[0][1]  # levels of 2, step 5
    with pytest.raises(FormatError, match="alpha out of range"):
        from_chunks([(b"alph", bad[:1] + bytes([200]) + bad[2:])], 4, 4)


def test_alpha_drop_composites_over_white_as_before(tiny_model):
    image = cutout()
    dropped = vtcodec.compress(image, 8, model=tiny_model, alpha="drop")
    background = Image.new("RGBA", image.size, (255, 255, 255, 255))
    flat = Image.alpha_composite(background, image).convert("RGB")
    assert dropped == vtcodec.compress(flat, 8, model=tiny_model)
    assert vtcodec.decompress(dropped, model=tiny_model).mode == "RGB"


def test_opaque_images_pay_nothing_for_alpha(tiny_model):
    image = random_image(50, 40)
    opaque = image.convert("RGBA")
    assert vtcodec.compress(opaque, 8, model=tiny_model) == vtcodec.compress(image, 8, model=tiny_model)
    rgba_array = np.dstack([np.asarray(image), np.full((40, 50), 255, np.uint8)])
    assert vtcodec.compress(rgba_array, 8, model=tiny_model) == vtcodec.compress(image, 8, model=tiny_model)


def test_alpha_without_a_place_in_the_output_format_is_composited_with_a_warning(tiny_model):
    decoded = vtcodec.decompress(vtcodec.compress(cutout(), 8, model=tiny_model), model=tiny_model)
    with pytest.warns(VtcodecWarning, match="holds no alpha"):
        jpeg = Image.open(io.BytesIO(image_file_bytes(decoded, "x.jpg")))
    assert jpeg.mode == "RGB"


# --- frames ---------------------------------------------------------------------------------


def test_multi_frame_files_keep_one_frame_and_say_so(tmp_path):
    frames = [Image.new("RGB", (20, 10), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.warns(VtcodecWarning, match="only the first of 2 frames"):
        first = read_image(path)
    assert np.asarray(first.convert("RGB"))[0, 0].tolist()[0] > 200
    with warnings.catch_warnings():
        warnings.simplefilter("error", VtcodecWarning)
        second = read_image(path, frame=1)
    assert np.asarray(second.convert("RGB"))[0, 0].tolist()[2] > 200
    with pytest.raises(InputError, match="no frame 2"):
        read_image(path, frame=2)


# --- format ---------------------------------------------------------------------------------


def _with_chunks(data: bytes, chunks) -> bytes:
    parsed = container.parse(data)
    return container.assemble(dataclasses.replace(parsed.header, chunks=tuple(chunks)), parsed.payloads)


def test_corrupt_and_oversized_chunks_are_format_errors(tiny_model):
    data = vtcodec.compress(random_image(40, 30), 4, model=tiny_model)
    w, h = 40, 30
    good_alpha = to_chunks(Extras(alpha=np.zeros((h, w), np.uint8)))[0]
    bomb = b"\x01" + zlib.compress(b"\x00" * (w * h * 4))
    cases = {
        "bad zlib": [(b"exif", b"\x01garbage")],
        "unknown method": [(b"xmp ", b"\x07abc")],
        "empty item": [(b"iccp", b"")],
        "alpha of the wrong size": [(b"alph", bomb)],
        "alpha filter": [(b"alph", b"\x09" + good_alpha[1][1:])],
        "trailing data": [(b"exif", b"\x01" + zlib.compress(b"abc") + b"junk")],
        "critical chunk": [(b"Frob", b"x")],
    }
    for what, chunks in cases.items():
        with pytest.raises(FormatError):
            read_tokens(_with_chunks(data, chunks), tiny_model)
            pytest.fail(what)
    assert read_tokens(_with_chunks(data, [good_alpha, (b"frob", b"skip me")]), tiny_model).extras.alpha.shape == (h, w)
    big = b"\x00" + b"x" * ((1 << 24) + 1)
    with pytest.raises(FormatError, match="over"):
        from_chunks([(b"exif", big)], w, h)
    with pytest.raises(ValueError):
        parsed = container.parse(data)
        container.assemble(dataclasses.replace(parsed.header, chunks=((b"exif", b"a"),) * 2), parsed.payloads)


def test_a_duplicated_chunk_in_a_file_is_a_format_error(tiny_model):
    version_1 = vtcodec.compress(random_image(40, 30), 4, model=tiny_model, layout=Layout(1))  # one CRC at the end
    data = _with_chunks(version_1, [(b"exif", b"\x00ab")])
    body = bytearray(data[:-4])
    start = body.index(b"exif")
    body[start - 1] = 2  # count 2
    body[start + 8 : start + 8] = body[start : start + 8]  # the same chunk again
    with pytest.raises(FormatError, match="twice"):
        container.unpack(bytes(body) + struct.pack("<I", zlib.crc32(body)))


# --- the CLI --------------------------------------------------------------------------------


def test_cli_round_trip_of_profile_metadata_and_alpha(cli_run, tiny_model_path, tmp_path):
    jpeg, _ = rotated_jpeg()
    photo = tmp_path / "photo.jpg"
    image = Image.open(io.BytesIO(jpeg))
    image.save(photo, quality=95, exif=image.info["exif"], icc_profile=display_p3(), xmp=XMP)
    vtk = tmp_path / "photo.vtk"
    code, _, err = cli_run("encode", photo, "-o", vtk, "--model", tiny_model_path, "--tokens", "4")
    assert code == 0 and "not kept: EXIF" in err
    code, _, err = cli_run("encode", photo, "-o", vtk, "--model", tiny_model_path, "--metadata", "all", "--force")
    assert code == 0
    code, out, _ = cli_run("info", vtk, "--model", tiny_model_path)
    assert code == 0 and "colour profile 568 bytes" in out and "EXIF" in out and "XMP" in out
    png = tmp_path / "photo.png"
    assert cli_run("decode", vtk, "-o", png, "--model", tiny_model_path)[0] == 0
    decoded = Image.open(png)
    assert decoded.size == (48, 80) and decoded.info["icc_profile"] == display_p3()
    assert decoded.getexif()[0x0112] == 1 and decoded.info["xmp"] == XMP

    cut = tmp_path / "cut.png"
    cutout().save(cut)
    assert cli_run("encode", cut, "-o", tmp_path / "cut.vtk", "--model", tiny_model_path)[0] == 0
    assert cli_run("decode", tmp_path / "cut.vtk", "-o", tmp_path / "cut.out.png", "--model", tiny_model_path)[0] == 0
    alpha = np.asarray(Image.open(tmp_path / "cut.out.png"))[..., 3].astype(int)
    assert np.abs(alpha - np.asarray(cutout())[..., 3]).max() <= 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--metadata", "gps"], "unknown metadata"),
        (["--alpha", "maybe"], "alpha must be one of keep, lossless, drop"),
        (["--frame", "3"], "no frame 3"),
        (["--metadata", "all", "--bytes", "30"], "for the colour profile, metadata and alpha"),
    ],
)
def test_cli_errors_are_one_line(cli_run, tiny_model_path, tmp_path, args, message):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(rotated_jpeg()[0])
    code, _, err = cli_run("encode", photo, "-o", tmp_path / "x.vtk", "--model", tiny_model_path, *args)
    assert_one_line_error(code, err)
    assert message in err


# --- property test --------------------------------------------------------------------------

MODES = ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBa", "La", "CMYK", "YCbCr", "LAB", "HSV", "I", "I;16", "F"]


def _random_input(rng: np.random.Generator) -> Image.Image:
    width, height = (int(v) for v in rng.integers(1, 70, 2))
    mode = MODES[rng.integers(len(MODES))]
    base = Image.fromarray(rng.integers(0, 256, (height, width, 4), dtype=np.uint8), "RGBA")
    image = base.convert(mode) if mode not in ("I", "I;16", "F", "PA", "RGBa", "La") else None
    if mode in ("I", "I;16"):
        image = Image.fromarray(rng.integers(0, 65536, (height, width)).astype("<u2"))  # I;16
        image = image.convert("I") if mode == "I" else image
    elif mode == "F":
        image = Image.fromarray(rng.random((height, width)).astype(np.float32) * 300, "F")
    elif mode in ("PA", "RGBa", "La"):
        image = base.convert("RGBA").convert(mode) if mode != "PA" else base.convert("P").convert("PA")
    choice = rng.integers(6)
    if choice == 0:
        image.info["icc_profile"] = display_p3()
    elif choice == 1:
        image.info["icc_profile"] = bytes(rng.integers(0, 256, int(rng.integers(1, 300)), dtype=np.uint8))
    elif choice == 2:
        image.info["exif"] = bytes(rng.integers(0, 256, int(rng.integers(1, 60)), dtype=np.uint8))
    elif choice == 3:
        exif = Image.Exif()
        exif[0x0112] = int(rng.integers(1, 9))
        image.info["exif"] = exif.tobytes()
    if rng.random() < 0.3:
        image.info["xmp"] = XMP
    return image


def test_random_images_round_trip_or_fail_in_one_line(tiny_model):
    """Random sizes, every Pillow mode, profiles good and broken, EXIF good and broken, XMP, alpha."""
    rng = np.random.default_rng(22)
    outcomes = {"ok": 0, "refused": 0}
    for _ in range(120):
        image = _random_input(rng)
        keep = ["all", "none", "icc", "exif,xmp"][rng.integers(4)]
        alpha = ["keep", "lossless", "drop"][rng.integers(3)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", VtcodecWarning)
            try:
                prepared = prepare(image, keep, alpha)
                data = vtcodec.compress(prepared, 4, model=tiny_model)
            except VtcodecError as exc:
                assert "\n" not in str(exc)
                outcomes["refused"] += 1
                continue
        decoded = vtcodec.decompress(data, model=tiny_model)
        assert decoded.size == (prepared.pixels.shape[1], prepared.pixels.shape[0])
        extras = prepared.extras
        pixels = prepared.pixels
        grey = extras.icc is None and (pixels == pixels[..., :1]).all()  # equal channels decode to one
        base = "L" if grey else "RGB"
        if extras.alpha is not None:
            assert decoded.mode == base + "A" and np.array_equal(np.asarray(decoded)[..., -1], extras.alpha)
        else:
            assert decoded.mode == base
        for key, value in (("icc_profile", extras.icc), ("xmp", extras.xmp)):
            assert decoded.info.get(key) == value
        assert decoded.info.get("exif", b"Exif\x00\x00")[6:] == (extras.exif or b"")
        outcomes["ok"] += 1
    assert outcomes["ok"] > 100


def test_batch_runs_keep_alpha_and_metadata(cli_run, tiny_model_path, tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    cutout().save(source / "cut.png")
    (source / "photo.jpg").write_bytes(rotated_jpeg()[0])
    vtks, images = tmp_path / "vtk", tmp_path / "png"
    code, _, err = cli_run("encode", source, "-o", vtks, "--model", tiny_model_path, "--metadata", "exif", "-Q")
    assert code == 0, err
    assert cli_run("decode", vtks, "-o", images, "--model", tiny_model_path, "-Q")[0] == 0
    cut = Image.open(images / "cut.png")
    assert cut.mode == "RGBA" and np.abs(np.asarray(cut)[..., 3] - np.asarray(cutout())[..., 3].astype(int)).max() <= 2
    photo = Image.open(images / "photo.png")
    assert photo.size == (48, 80) and photo.getexif()[0x010F] == "vtcodec" and "xmp" not in photo.info
