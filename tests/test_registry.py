"""The registry: one manifest of models and decoders, shipped files, model folders, token-space files."""

import hashlib
import json
import shutil
import subprocess
import sys
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

import vtcodec
from vtcodec import decoders, registry, zoo
from vtcodec.decoders import load_decoder
from vtcodec.decoders.files import SCALE_PREFIX, save_decoder
from vtcodec.decoders.rendering import Decoder
from vtcodec.errors import InputError
from vtcodec.models import build_model

from .conftest import LEGACY, ROOT, SAMPLES, TINY_CONFIG, assert_one_line_error, random_image


@pytest.fixture
def no_model_dirs(monkeypatch, tmp_path):
    """No model folder holds anything: not --model-dir, not $VTCODEC_MODEL_DIR, not the cache."""
    monkeypatch.setattr(registry, "_extra_dirs", [])
    monkeypatch.setenv(registry.MODEL_DIR_ENV, str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    zoo._cache.clear()
    yield
    zoo._cache.clear()


def test_the_package_holds_exactly_the_shipped_entries_and_they_load():
    manifest = registry.load_manifest()
    shipped = [e for e in (*manifest.models, *manifest.decoders) if e.role == "shipped"]
    assert {e.file for e in shipped} == {p.name for p in registry.WEIGHTS_DIR.glob("*.safetensors")}
    assert manifest.default_model().role == "shipped"
    for entry in manifest.models:
        if entry.role == "shipped":
            assert zoo.load_model(registry.WEIGHTS_DIR / entry.file).model_id == entry.token_space
    default = vtcodec.load_model()
    assert default.model_id == manifest.default_model().token_space
    for entry in manifest.decoders_of(default.model_id):
        if entry.role == "shipped":
            assert load_decoder(default, entry.name).name == entry.name  # verifies the SHA-256
    assert sum(e.default for e in manifest.decoders_of(default.model_id)) == 1


def test_shipped_weights_stay_within_the_wheel_budget():
    # As the wheel stores them (deflate); the wheel (benchmarks/wheel_size.py) adds only code and docs.
    shipped = sum(len(zlib.compress(p.read_bytes())) for p in registry.WEIGHTS_DIR.glob("*.safetensors"))
    assert shipped <= 29 * 1024 * 1024  # 1 MiB left for the code


def test_the_shipped_perceptual_decoder_reads_the_default_models_files(no_model_dirs, cli_run, tmp_path):
    vtk = SAMPLES / "parrots-t16.vtk"  # written by the default model; no re-encoding
    outputs = {}
    for label, args in {
        "default": (),
        "perceptual": ("--decoder", "perceptual"),
        "realism": ("--realism", "0.5"),
    }.items():
        out = tmp_path / f"{label}.png"
        assert cli_run("decode", vtk, "-o", out, *args)[0] == 0
        outputs[label] = np.asarray(Image.open(out)).astype(int)
    assert outputs["default"].shape == outputs["perceptual"].shape == (256, 384, 3)
    assert not np.array_equal(outputs["default"], outputs["perceptual"])
    ends = np.minimum(outputs["default"], outputs["perceptual"]), np.maximum(outputs["default"], outputs["perceptual"])
    assert ((outputs["realism"] >= ends[0] - 2) & (outputs["realism"] <= ends[1] + 2)).mean() > 0.99  # in between
    code, _, err = cli_run("decode", vtk, "-o", tmp_path / "x.png", "--decoder", "realistic")
    assert_one_line_error(code, err)
    assert "no decoder 'realistic'" in err and "perceptual" in err  # the list of known ones names it


@pytest.mark.skipif(not LEGACY.is_dir(), reason="the repository's models/ folder is not present")
def test_legacy_entries_match_their_files():
    manifest = registry.load_manifest()
    for entry in (*manifest.models, *manifest.decoders):
        if entry.role != "legacy":
            continue
        data = (LEGACY / entry.file).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry.sha256
        if entry.kind == "model":
            assert zoo.parse_model(data).model_id == entry.token_space


def test_tampered_shipped_weights_are_refused(monkeypatch, tiny_model, tiny_model_path, tmp_path):
    shipped = tmp_path / "weights"
    shipped.mkdir()
    copy = shipped / "tiny.safetensors"
    shutil.copy(tiny_model_path, copy)
    entry = registry.Entry("model", "tiny", copy.name, "0" * 64, tiny_model.model_id, "shipped", True)
    monkeypatch.setattr(registry, "WEIGHTS_DIR", shipped)
    registry.save_manifest(registry.Manifest((entry,), ()))
    assert registry.update_digests() == []
    assert zoo.load_model().model_id == tiny_model.model_id
    zoo._cache.clear()
    data = bytearray(copy.read_bytes())
    data[-1] ^= 1
    copy.write_bytes(bytes(data))
    with pytest.raises(InputError, match="tampered"):
        zoo.load_model(copy)
    (shipped / "stray.safetensors").write_bytes(tiny_model_path.read_bytes())
    with pytest.raises(InputError, match="not listed"):
        zoo.load_model(shipped / "stray.safetensors")
    zoo._cache.clear()


def test_a_damaged_manifest_is_one_line(monkeypatch, tmp_path, cli_run):
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    (tmp_path / registry.MANIFEST_NAME).write_text('{"models": [{"name": 1}]}')
    code, _, err = cli_run("info", SAMPLES / "parrots-t16.vtk")
    assert_one_line_error(code, err)
    assert "registry is damaged" in err


def test_a_file_of_a_model_that_is_not_installed_says_how_to_get_it(no_model_dirs, cli_run, tmp_path):
    vtk = SAMPLES / "v1-parrots-t16.vtk"
    code, _, err = cli_run("decode", vtk, "-o", tmp_path / "out.png")
    assert_one_line_error(code, err)
    assert "model v1 (bf07c3fe08305991) is not installed" in err
    assert "models/v1.safetensors" in err and "--model-dir" in err and registry.MODEL_DIR_ENV in err
    code, _, err = cli_run("info", vtk)
    assert code == 0 and "not installed" in err  # info still describes the file
    if LEGACY.is_dir():
        assert cli_run("decode", vtk, "-o", tmp_path / "out.png", "--model-dir", LEGACY)[0] == 0
        assert (tmp_path / "out.png").stat().st_size > 0


@pytest.mark.skipif(not LEGACY.is_dir(), reason="the repository's models/ folder is not present")
def test_a_decoder_that_is_not_installed_says_how_to_get_it(no_model_dirs, cli_run, tmp_path):
    only_v3 = tmp_path / "models"  # model v3's token space without its decoder files
    only_v3.mkdir()
    (only_v3 / "v3.safetensors").write_bytes((LEGACY / "v3.safetensors").read_bytes())
    vtk, out = SAMPLES / "v3-parrots-t16.vtk", tmp_path / "x.png"
    code, _, err = cli_run("decode", vtk, "-o", out, "--decoder", "tiled", "--model-dir", only_v3)
    assert_one_line_error(code, err)
    assert "decoder 'tiled' is not installed" in err and "models/v3-tiled.decoder.safetensors" in err


@pytest.mark.skipif(not LEGACY.is_dir(), reason="the repository's models/ folder is not present")
def test_the_model_dir_environment_variable_is_searched(tmp_path):
    code = "import vtcodec, sys; vtcodec.decompress(open(sys.argv[1], 'rb').read()).save(sys.argv[2])"
    out = tmp_path / "v0.png"
    env = {"PATH": "", registry.MODEL_DIR_ENV: str(LEGACY), "HOME": str(tmp_path)}
    args = [sys.executable, "-c", code, str(SAMPLES / "v0-parrots-t16.vtk"), str(out)]
    subprocess.run(args, env=env, check=True, cwd=tmp_path, timeout=120, capture_output=True)
    assert out.stat().st_size > 0


def test_a_token_space_file_keeps_its_id_and_decodes_with_its_decoder_files(tiny_model, tmp_path):
    data = zoo.serialize_model(tiny_model.model, tiny_model.prior, tiny_model.context, tiny_model.model_id)
    assert len(data) < len(tiny_model.path.read_bytes())
    space = zoo.parse_model(data)
    assert space.model_id == tiny_model.model_id and not space.has_decoder
    image = random_image(70, 50)
    assert vtcodec.compress(image, 5, model=space) == vtcodec.compress(image, 5, model=tiny_model)
    assert decoders.decoder_names(space) == []
    with pytest.raises(InputError, match="has no decoder"):
        load_decoder(space)
    path = tmp_path / "tiny-tiled.decoder.safetensors"
    save_decoder(tiny_model.model, "tiled", tiny_model.model_id, path, context="tile")
    tokens = vtcodec.tokenize(image, tiny_model)
    counts = np.full(tokens.grid.count, 5)
    own = decoders.tiled(tiny_model).render(tokens.ids, counts, tokens.grid).astype(int)
    from_file = load_decoder(space, path).render(tokens.ids, counts, tokens.grid).astype(int)
    assert np.abs(own - from_file).max() <= 1  # the same fp16 weights (channels_last rounds differently)


def test_int8_decoder_files_are_half_the_size_and_decode_within_rounding(tiny_model, tmp_path):
    torch.manual_seed(3)
    network = build_model(TINY_CONFIG)
    network.load_state_dict(tiny_model.model.state_dict())
    with torch.no_grad():
        for name, p in network.named_parameters():
            if name.startswith(registry.DECODER_PREFIXES) and p.dim() > 1:
                p.mul_(1 + 0.2 * torch.randn_like(p))
    fp16, int8 = tmp_path / "a.decoder.safetensors", tmp_path / "b.decoder.safetensors"
    save_decoder(network, "grid", tiny_model.model_id, fp16)
    save_decoder(network, "grid", tiny_model.model_id, int8, weights="int8")
    assert int8.stat().st_size < 0.6 * fp16.stat().st_size
    image = vtcodec.tokenize(random_image(100, 70), tiny_model)
    counts = np.full(image.grid.count, 6)
    a = load_decoder(tiny_model, fp16).render(image.ids, counts, image.grid).astype(int)
    b = load_decoder(tiny_model, int8).render(image.ids, counts, image.grid).astype(int)
    assert np.abs(a - b).mean() < 1.0 and np.abs(a - b).max() <= 16
    reference = Decoder("grid", tiny_model.model_id, network.eval(), "grid").render(image.ids, counts, image.grid)
    assert np.abs(b - reference.astype(int)).mean() < 1.0


def test_int8_decoder_files_without_their_scales_are_refused(tiny_model, tmp_path):
    from safetensors.numpy import load, save

    path = tmp_path / "b.decoder.safetensors"
    save_decoder(tiny_model.model, "grid", tiny_model.model_id, path, weights="int8")
    raw = path.read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    tensors = {k: v for k, v in load(raw).items() if not k.startswith(SCALE_PREFIX)}
    path.write_bytes(save(tensors, metadata=header["__metadata__"]))
    with pytest.raises(InputError, match="without a scale"):
        load_decoder(tiny_model, path)


def test_the_version_comes_from_one_place(cli_run):
    code, out, _ = cli_run("--version")
    assert code == 0 and out.strip() == f"vtcodec {vtcodec.__version__}"
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]


@pytest.fixture
def tiny_registry(monkeypatch, tmp_path, tiny_model_path, tiny_model):
    """A package whose default model is the tiny one, with decoders 'grid' (default) and 'perceptual'."""
    shipped = tmp_path / "weights"
    shipped.mkdir()
    shutil.copy(tiny_model_path, shipped / "tiny.safetensors")
    torch.manual_seed(5)
    entries = []
    for name in ("grid", "perceptual"):
        network = build_model(TINY_CONFIG)
        network.load_state_dict(tiny_model.model.state_dict())
        with torch.no_grad():
            for key, p in network.named_parameters():
                if key.startswith(registry.DECODER_PREFIXES):
                    p.copy_(torch.randn_like(p) * 0.15)
        save_decoder(network, name, tiny_model.model_id, shipped / f"{name}.decoder.safetensors")
        entries.append(
            registry.Entry(
                "decoder", name, f"{name}.decoder.safetensors", "", tiny_model.model_id, "shipped", name == "grid"
            )
        )
    model = registry.Entry("model", "tiny", "tiny.safetensors", "", tiny_model.model_id, "shipped", True)
    monkeypatch.setattr(registry, "WEIGHTS_DIR", shipped)
    registry.save_manifest(registry.Manifest((model,), tuple(entries)))
    registry.update_digests()
    zoo._cache.clear()
    decoders._cache.clear()
    yield zoo.load_model()
    zoo._cache.clear()
    decoders._cache.clear()


def test_realism_blends_the_default_decoder_toward_the_perceptual_one(tiny_registry, cli_run, tmp_path):
    model = tiny_registry
    assert decoders.decoder_names(model) == ["grid", "perceptual", "tiled"]
    data = vtcodec.compress(random_image(100, 70), 6)
    grid = np.asarray(vtcodec.decompress(data, decoder="grid")).astype(int)
    perceptual = np.asarray(vtcodec.decompress(data, decoder="perceptual")).astype(int)
    assert np.array_equal(np.asarray(vtcodec.decompress(data, realism=0.0)), grid)
    assert np.array_equal(np.asarray(vtcodec.decompress(data, realism=1.0)), perceptual)
    half = np.asarray(vtcodec.decompress(data, realism=0.5)).astype(int)
    assert not np.array_equal(half, grid) and not np.array_equal(half, perceptual)
    mixed = decoders.choose(model, realism=0.5).network.state_dict()
    a, b = (load_decoder(model, n).network.state_dict() for n in ("grid", "perceptual"))
    key = "decoder.1.conv2.weight"
    assert torch.allclose(mixed[key], (a[key] + b[key]) / 2, atol=1e-6)
    vtk = tmp_path / "x.vtk"
    vtk.write_bytes(data)
    assert cli_run("decode", vtk, "-o", tmp_path / "half.png", "--realism", "0.5")[0] == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "half.png")), half.astype(np.uint8))
    code, _, err = cli_run("decode", vtk, "-o", tmp_path / "y.png", "--realism", "0.5", "--decoder", "grid")
    assert_one_line_error(code, err)
    code, _, err = cli_run("decode", vtk, "-o", tmp_path / "y.png", "--realism", "1.5")
    assert_one_line_error(code, err)


def test_realism_needs_a_perceptual_decoder(tiny_model):
    data = vtcodec.compress(random_image(40, 40), 4, model=tiny_model)
    with pytest.raises(InputError, match="no 'perceptual' decoder"):
        vtcodec.decompress(data, model=tiny_model, realism=0.5)
