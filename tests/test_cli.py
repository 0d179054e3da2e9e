import json
import subprocess
import sys

import pytest

from vtcodec.pipeline import Layout

from .conftest import ROOT, assert_one_line_error, random_image


@pytest.fixture
def image_file(tmp_path):
    path = tmp_path / "pic.png"
    random_image(70, 40).save(path)
    return path


def test_encode_decode_info(cli_run, image_file, tiny_model_path):
    code, _, err = cli_run("encode", image_file, "--tokens", 4, "--model", tiny_model_path)
    assert code == 0, err
    vtk = image_file.with_suffix(".vtk")
    assert vtk.exists()
    code, out, err = cli_run("info", vtk, "--json", "--model", tiny_model_path)
    assert code == 0, err
    info = json.loads(out)
    assert info["width"] == 70 and info["height"] == 40
    assert info["bytes"] == vtk.stat().st_size
    assert info["bpp"] == pytest.approx(8 * vtk.stat().st_size / (70 * 40))
    assert info["tokens_per_tile"] == [4] * 6
    assert info["tile_size"] == 32
    assert info["codebook_size"] == 15
    assert info["coder"] in ("context", "raw")  # the tiny model has a digit-context prior
    assert len(info["model_id"]) == 16
    assert info["format_version"] == 2 and info["complete"]
    assert [layer["tokens"] for layer in info["layers"]] == [4]  # the default ladder, up to --tokens 4
    assert info["layers"][-1]["ends_at_byte"] == info["bytes"]
    code, out, _ = cli_run("info", vtk, "--model", tiny_model_path)
    assert code == 0 and "70x40" in out and "bpp" in out
    code, _, err = cli_run("decode", vtk, "--model", tiny_model_path)
    assert code == 0, err
    from PIL import Image

    assert Image.open(image_file.with_name("pic.decoded.png")).size == (70, 40)


def test_outputs_are_not_overwritten_without_force(cli_run, image_file, tiny_model_path, tmp_path):
    out = tmp_path / "x.vtk"
    out.write_bytes(b"precious")
    code, _, err = cli_run("encode", image_file, "-o", out, "--model", tiny_model_path)
    assert_one_line_error(code, err)
    assert "--force" in err
    assert out.read_bytes() == b"precious"
    code, _, err = cli_run("encode", image_file, "-o", out, "--force", "--model", tiny_model_path)
    assert code == 0, err
    assert out.read_bytes()[:3] == b"VTK"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_decode_preview_tokens(cli_run, image_file, tiny_model_path, tmp_path):
    vtk = tmp_path / "a.vtk"
    assert cli_run("encode", image_file, "-o", vtk, "-t", 8, "--model", tiny_model_path)[0] == 0
    code, _, err = cli_run("decode", vtk, "-o", tmp_path / "p.png", "--tokens", 2, "--model", tiny_model_path)
    assert code == 0, err


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "not_image",
        "directory",
        "truncated",
        "corrupt",
        "unknown_model",
        "version",
        "bad_option",
        "negative_tokens",
        "too_many_tokens",
        "bad_suffix",
    ],
)
def test_errors_are_one_line(case, cli_run, image_file, tiny_model_path, tmp_path):
    vtk = tmp_path / "a.vtk"
    assert cli_run("encode", image_file, "-o", vtk, "--model", tiny_model_path, "-t", 4)[0] == 0
    data = vtk.read_bytes()
    model = ["--model", tiny_model_path]
    if case == "missing":
        result = cli_run("encode", tmp_path / "nope.png", *model)
    elif case == "not_image":
        (tmp_path / "text.png").write_text("hello")
        result = cli_run("encode", tmp_path / "text.png", *model)
    elif case == "directory":
        (tmp_path / "empty").mkdir()
        result = cli_run("encode", tmp_path / "empty", *model)
    elif case == "truncated":
        vtk.write_bytes(data[:-7])
        result = cli_run("decode", vtk, *model)
    elif case == "corrupt":
        vtk.write_bytes(data[:20] + bytes([data[20] ^ 0x10]) + data[21:])
        result = cli_run("decode", vtk, *model)
    elif case == "unknown_model":
        result = cli_run("decode", vtk)
    elif case == "version":
        vtk.write_bytes(data[:3] + b"\x07" + data[4:])
        result = cli_run("decode", vtk, *model)
    elif case == "bad_option":
        result = cli_run("encode", image_file, "--no-such-option", 3)
    elif case == "negative_tokens":
        result = cli_run("encode", image_file, "--tokens", -3, *model)
    elif case == "too_many_tokens":
        result = cli_run("encode", image_file, "--tokens", 9, "-f", *model)
    elif case == "bad_suffix":
        result = cli_run("decode", vtk, "-o", tmp_path / "out.xyz", *model)
    code, _, err = result
    assert_one_line_error(code, err)
    assert not (tmp_path / "a.decoded.png").exists()


def test_console_script_entry_point(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "vtcodec", "decode", str(tmp_path / "missing.vtk")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [f"vtcodec: error: {tmp_path / 'missing.vtk'}: no such file"]


def test_encode_targets_and_truncate(cli_run, image_file, tiny_model_path, tmp_path):
    model = ["--model", tiny_model_path]
    small = tmp_path / "b.vtk"
    code, _, err = cli_run("encode", image_file, "-o", small, "--bytes", 90, *model)
    assert code == 0, err
    assert small.stat().st_size <= 90
    code, _, err = cli_run("encode", image_file, "-o", tmp_path / "p.vtk", "--psnr", 99, *model)
    assert code == 0 and "warning" in err and "out of reach" in err
    full = tmp_path / "full.vtk"
    assert cli_run("encode", image_file, "-o", full, "-t", 8, *model)[0] == 0
    code, _, err = cli_run("truncate", full, "-o", tmp_path / "t.vtk", "--bytes", 60, *model)
    assert code == 0, err
    assert (tmp_path / "t.vtk").stat().st_size <= 60
    code, _, err = cli_run("truncate", full, "-o", tmp_path / "t2.vtk", "--tokens", 2, *model)
    assert code == 0, err


@pytest.mark.parametrize(
    "args",
    [["--tokens", "3", "--bytes", "100"], ["--bpp", "0.1", "--psnr", "30"], ["--bytes", "3"]],
)
def test_bad_target_combinations(cli_run, image_file, tiny_model_path, tmp_path, args):
    code, _, err = cli_run("encode", image_file, "-o", tmp_path / "x.vtk", *args, "--model", tiny_model_path)
    assert_one_line_error(code, err)
    assert not (tmp_path / "x.vtk").exists()


def test_truncate_needs_exactly_one_target(cli_run, image_file, tiny_model_path, tmp_path):
    vtk = tmp_path / "a.vtk"
    assert cli_run("encode", image_file, "-o", vtk, "--model", tiny_model_path)[0] == 0
    code, _, err = cli_run("truncate", vtk, "-o", tmp_path / "t.vtk", "--model", tiny_model_path)
    assert_one_line_error(code, err)


def test_corrupt_files_are_named_and_say_what_happened(cli_run, tiny_model_path, tmp_path):
    import vtcodec

    good = vtcodec.compress(random_image(70, 50), 6, model=tiny_model_path, layout=Layout(1))  # one payload
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x10
    cases = {
        "cut.vtk": (good[:-7], f"truncated: {len(good) - 7} of {len(good)} bytes"),
        "flipped.vtk": (bytes(flipped), "corrupt (checksum mismatch)"),
        "header.vtk": (good[:14], "truncated: the file ends inside its header, after 14 bytes"),
        "longer.vtk": (good + b"\0\0", f"corrupt file: 2 bytes past its end ({len(good)} bytes)"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        for command in (["decode", path, "-o", tmp_path / "x.png"], ["info", path], ["truncate", path, "-t", "1"]):
            if command[0] == "truncate":
                command += ["-o", tmp_path / "t.vtk"]
            code, _, err = cli_run(*command, "--model", tiny_model_path)
            assert code == 3, (name, command[0], err)
            assert err.strip() == f"vtcodec: error: {path}: {message}", (command[0], err)


def test_a_cut_version_2_file_decodes_its_complete_layers_and_damage_is_still_corrupt(
    cli_run, tiny_model_path, tmp_path
):
    import vtcodec
    from vtcodec import container

    good = vtcodec.compress(random_image(70, 50), 8, model=tiny_model_path)  # layers end at 4 and 8 tokens
    ends = container.parse(good).layer_offsets
    model = ["--model", tiny_model_path]
    cut = tmp_path / "cut.vtk"
    cut.write_bytes(good[: ends[0] + 1])
    code, _, err = cli_run("decode", cut, "-o", tmp_path / "c.png", *model)
    assert code == 0 and f"{cut}: partial file: 1 of 2 layers, 4 of 8 tokens per tile" in err
    code, _, err = cli_run("decode", cut, "-o", tmp_path / "s.png", "--strict", *model)
    assert code == 3 and "truncated" in err and not (tmp_path / "s.png").exists()
    assert_one_line_error(code, err)
    code, out, _ = cli_run("info", cut, *model)
    assert code == 0 and "partial file: 1 of 2 layers" in out and f"4@{ends[0]}" in out
    flipped = bytearray(good)
    flipped[ends[0] - 1] ^= 0x04  # inside the first layer, which is complete
    (tmp_path / "flipped.vtk").write_bytes(bytes(flipped))
    code, _, err = cli_run("decode", tmp_path / "flipped.vtk", "-o", tmp_path / "f.png", *model)
    assert code == 3 and "corrupt (checksum mismatch in layer 1)" in err
    (tmp_path / "header.vtk").write_bytes(good[:20])
    code, _, err = cli_run("decode", tmp_path / "header.vtk", "-o", tmp_path / "h.png", *model)
    assert code == 3 and "truncated: the file ends inside its header" in err
    # truncate --cut needs no model: the first layer, with the header rewritten, is a whole file
    code, _, err = cli_run("truncate", tmp_path / "cut.vtk", "--bytes", str(ends[0]), "--cut", "-o", tmp_path / "t.vtk")
    assert code == 0, err
    assert container.parse((tmp_path / "t.vtk").read_bytes()).complete
    assert (tmp_path / "t.vtk").read_bytes() == vtcodec.truncate(good, tokens=4, model=tiny_model_path)


def test_usage_errors_exit_2_input_errors_1(cli_run, tiny_model_path, tmp_path):
    random_image(40, 30).save(tmp_path / "a.png")
    model = ["--model", tiny_model_path]
    assert cli_run("encode", tmp_path / "a.png", "-o", tmp_path / "a.vtk", *model)[0] == 0
    usage = [
        (
            ["encode", tmp_path / "a.png", "-o", tmp_path / "b.vtk", "--tokens", "9"],
            "tokens per tile must be between 0 and 8",
        ),
        (["encode", tmp_path / "a.png", "-o", tmp_path / "b.vtk", "-t", "4", "--bytes", "99"], "use only one of"),
        (
            ["decode", tmp_path / "a.vtk", "-o", tmp_path / "b.png", "--decoder", "tiled", "--realism", "0.5"],
            "not both",
        ),
        (["truncate", tmp_path / "a.vtk", "-o", tmp_path / "b.vtk"], "give exactly one of --tokens, --bytes or --bpp"),
        (["truncate", tmp_path / "a.vtk", "-o", tmp_path / "b.vtk", "--bpp", "0"], "bpp must be positive"),
        (["encode", tmp_path / "a.png", "-o", tmp_path / "b.vtk", "--alpha", "maybe"], "alpha must be one of"),
        (["encode", tmp_path / "a.png", "-o", tmp_path / "b.vtk", "-t", "-1"], "must be 0 or more, not -1"),
        (["encode", tmp_path / "a.png", "-o", tmp_path / "b.vtk", "--bytes", "0"], "must be 1 or more, not 0"),
        (["decode", tmp_path / "a.vtk", "-o", tmp_path / "b.png", "--realism", "2"], "must be 0.0 … 1.0, not 2.0"),
        (["decode", tmp_path / "a.vtk", "-o", tmp_path / "b.png", "-j", "0"], "must be 1 or more, not 0"),
    ]
    for args, message in usage:
        code, _, err = cli_run(*args, *model)
        assert code == 2 and message in err, (args, err)
        assert_one_line_error(code, err)
    code, _, err = cli_run("encode", tmp_path / "missing.png", "-o", tmp_path / "b.vtk", *model)
    assert code == 1 and "no such file" in err


def test_real_pipes_through_encode_and_decode(tiny_model_path, tmp_path):
    """cat img.png | vtcodec encode - -o - | vtcodec decode - -o - > out.png, with nothing else on stdout."""
    random_image(70, 50).save(tmp_path / "img.png")
    model = f"--model {tiny_model_path}"
    vtcodec_cli = f"{sys.executable} -m vtcodec"
    line = (
        f"cat {tmp_path / 'img.png'} | {vtcodec_cli} encode - -o - -t 4 {model} | "
        f"{vtcodec_cli} decode - -o - {model} > {tmp_path / 'out.png'}"
    )
    done = subprocess.run(["bash", "-o", "pipefail", "-c", line], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    from PIL import Image

    with Image.open(tmp_path / "out.png") as image:
        assert image.format == "PNG" and image.size == (70, 50)
    piped = subprocess.run(
        [*vtcodec_cli.split(), "encode", "-", "-o", "-", "-t", "4", *model.split()],
        input=(tmp_path / "img.png").read_bytes(),
        capture_output=True,
    )
    assert piped.stdout[:3] == b"VTK" and piped.returncode == 0  # the file and nothing else
    jpeg = subprocess.run(
        [*vtcodec_cli.split(), "decode", "-", "-o", "-", "--format", "jpg", *model.split()],
        input=piped.stdout,
        capture_output=True,
    )
    assert jpeg.returncode == 0 and jpeg.stdout[:2] == b"\xff\xd8"


def test_output_names_must_say_what_is_written(cli_run, tiny_model_path, tmp_path):
    random_image(40, 30).save(tmp_path / "a.png")
    model = ["--model", tiny_model_path]
    code, _, err = cli_run("encode", tmp_path / "a.png", "-o", tmp_path / "out.webp", *model)
    assert code == 2 and "use `vtcodec decode` to write images" in err and not (tmp_path / "out.webp").exists()
    assert cli_run("encode", tmp_path / "a.png", "-o", tmp_path / "out.webp", "--force-name", *model)[0] == 0
    assert (tmp_path / "out.webp").read_bytes()[:3] == b"VTK"
    code, _, err = cli_run("decode", tmp_path / "out.webp", "-o", tmp_path / "x.xyz", *model)
    assert code == 2 and "unknown image suffix '.xyz'" in err
    code, _, err = cli_run("encode", "-", *model)
    assert code == 2 and "standard input needs -o" in err


COMMANDS = ("encode", "decode", "info", "truncate", "train", "tokens", "train-decoder", "bench")


@pytest.mark.parametrize("command", COMMANDS)
def test_help_names_values_in_words(cli_run, command):
    """One line per option, metavars such as N and FILE: no typer placeholders, no stale texts."""
    code, out, _ = cli_run(command, "--help")
    assert code == 0
    for placeholder in ("<int", "<float", "<str", "<path", "<list", "{", "[x>", "[x<", "tar shard", "WebDataset"):
        assert placeholder not in out, (command, placeholder)


def test_help_shows_examples(cli_run):
    from vtcodec.codec import DEFAULT_TOKENS

    for command, example in (("encode", "vtcodec encode photo.png"), ("decode", "vtcodec decode photo.vtk")):
        code, out, _ = cli_run(command, "--help")
        assert code == 0 and example in out
    code, out, _ = cli_run("encode", "--help")
    assert f"[default: {DEFAULT_TOKENS}]" in " ".join(out.split())  # the help's default is the codec's


def test_truncate_takes_a_bpp_budget(cli_run, tmp_path):
    sample = ROOT / "samples" / "parrots-t16.vtk"  # 384x256, made with the shipped model
    code, _, err = cli_run("truncate", sample, "-o", tmp_path / "b.vtk", "--bpp", "0.006")
    assert code == 0, err
    size = (tmp_path / "b.vtk").stat().st_size
    assert 0.5 * int(0.006 * 384 * 256 / 8) < size <= int(0.006 * 384 * 256 / 8)


@pytest.mark.skipif(not (ROOT / "models").is_dir(), reason="the repository's models/ folder is not present")
def test_info_separates_decoders_that_are_not_installed(cli_run, tmp_path, monkeypatch):
    from vtcodec import registry

    sample = ROOT / "samples" / "v3-parrots-t16.vtk"
    for name in ("v3.safetensors", "v3-attention.decoder.safetensors"):  # model v3 with one of its decoders
        (tmp_path / name).write_bytes((ROOT / "models" / name).read_bytes())
    monkeypatch.setattr(registry, "model_dirs", lambda: [tmp_path])
    code, out, _ = cli_run("info", sample, "--json")
    record = json.loads(out)
    assert code == 0 and "tiled" in record["decoders_not_installed"] and "tiled" not in record["decoders"]
    code, out, _ = cli_run("info", sample)
    assert "not installed: " in out and "tiled" not in out.splitlines()[1]


def test_batch_summary_rates_show_small_files():
    from vtcodec.jobs import throughput

    assert throughput(2400, 10.0) == "240 B/s"
    assert throughput(24_000, 10.0) == "2.40 kB/s"
    assert throughput(24_000_000, 10.0) == "2.40 MB/s"


def test_quality_like_cwebp(cli_run, tiny_model_path, tmp_path):
    """`vtcodec encode 001.png -q 75 -o q.vtk` works; -Q is quiet; a bad quality is a usage error."""
    random_image(96, 64).save(tmp_path / "001.png")
    model = ["--model", tiny_model_path]
    code, _, err = cli_run("encode", tmp_path / "001.png", "-q", "75", "-o", tmp_path / "q.vtk", *model)
    assert code == 0 and "q.vtk" in err
    code, _, err = cli_run("encode", tmp_path / "001.png", "--quality", "101", "-o", tmp_path / "r.vtk", *model)
    assert code == 2 and "must be 0.0 … 100.0" in err
    code, _, err = cli_run("encode", tmp_path / "001.png", "-q", "50", "-t", "4", "-o", tmp_path / "r.vtk", *model)
    assert code == 2 and "use only one of" in err
    code, _, err = cli_run("encode", tmp_path, "-q", "60", "-Q", "-o", tmp_path / "batch", *model)
    assert code == 0, err
    import vtcodec

    single = vtcodec.compress(_open(tmp_path / "001.png"), quality=60, model=tiny_model_path)
    assert (tmp_path / "batch" / "001.vtk").read_bytes() == single


def _open(path):
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        return image


def test_pillow_saves_with_quality(tiny_model_path, tmp_path):
    import vtcodec  # noqa: F401  (registers the plugin)

    image = random_image(96, 64)
    image.save(tmp_path / "a.vtk", quality=80, model=str(tiny_model_path))
    image.save(tmp_path / "b.vtk", quality=5, model=str(tiny_model_path))
    assert (tmp_path / "a.vtk").stat().st_size >= (tmp_path / "b.vtk").stat().st_size


def test_a_long_encode_shows_progress_on_a_terminal_only(cli_run, tiny_model_path, tmp_path):
    import shutil

    random_image(96, 64).save(tmp_path / "a.png")
    model = ["--model", str(tiny_model_path)]
    code, _, err = cli_run("encode", tmp_path / "a.png", "--bytes", "200", "-o", tmp_path / "a.vtk", *model)
    assert code == 0 and "measuring" not in err  # not a terminal: one summary line, no bar
    if shutil.which("script") is None:
        pytest.skip("no `script` to give the command a terminal")
    command = f"stty cols 100 rows 30; {sys.executable} -m vtcodec encode {tmp_path / 'a.png'} --bytes 200 "
    command += f"-o {tmp_path / 'b.vtk'} {' '.join(model)}"
    done = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "measuring" in done.stdout, done.stdout[-500:]
    quiet = command.replace("b.vtk", "c.vtk") + " -Q"
    done = subprocess.run(["script", "-qec", quiet, "/dev/null"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "measuring" not in done.stdout  # -Q: no bar, even on a terminal


def test_a_single_decode_hands_large_blocks_back(cli_run, image_file, tiny_model_path, monkeypatch):
    import platform

    from vtcodec.cli import coding, common

    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert common.return_large_blocks()  # mallopt accepted the threshold
    calls = []
    monkeypatch.setattr(coding, "return_large_blocks", lambda: calls.append(1) or True)
    code, _, err = cli_run("encode", image_file, "--tokens", 4, "--model", tiny_model_path)
    assert code == 0, err
    code, _, err = cli_run("decode", image_file.with_suffix(".vtk"), "--model", tiny_model_path)
    assert code == 0, err
    assert calls == [1]
    (image_file.parent / "many").mkdir()
    code, _, err = cli_run(
        "decode", image_file.with_suffix(".vtk"), "-o", image_file.parent / "many", "--model", tiny_model_path
    )
    assert code == 0, err
    assert calls == [1]  # a batch keeps the default: its heap serves image after image
