"""Imported TiTok-family models from the command line: ``vtcodec model import``, then every command.

The checkpoints are written here in the published layouts, with deterministic weights
(``vtcodec.models.deterministic``; ``tests/test_titok.py`` checks them against the reference
code), at the smallest size the reference accepts: ViT-S, 64-pixel tiles.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from tests.conftest import assert_one_line_error, random_image
from vtcodec import registry
from vtcodec.models.deterministic import deterministic_state
from vtcodec.models.titok import TiTokConfig, TiTokTokenizer

ROOT = Path(__file__).parents[1]
SMALL = {"vit_enc_model_size": "small", "vit_dec_model_size": "small", "vit_enc_patch_size": 16}
SMALL["vit_dec_patch_size"] = 16
VQ = {"codebook_size": 4096, "token_size": 12, "use_l2_norm": True, **SMALL}


def published_config(tokens: int) -> dict:
    return {"model": {"vq_model": {**VQ, "num_latent_tokens": tokens}}, "dataset": {"preprocessing": {"crop_size": 64}}}


def write_checkpoint(folder: Path, family: str, tokens: int, form: str) -> Path:
    """A checkpoint folder: ``bin`` as One-D-Piece's script reads it (a raw state dict, the pixel
    decoder apart in MaskGIT-VQGAN's own file), ``safetensors`` as a TiTok hub folder."""
    folder.mkdir(parents=True)
    config = published_config(tokens)
    model = TiTokTokenizer(TiTokConfig.from_published(config, family))
    state = deterministic_state({k: tuple(v.shape) for k, v in model.state_dict().items()})
    (folder / "config.json").write_text(json.dumps(config))
    if form == "bin":
        vqgan = {k.removeprefix("pixel_"): v for k, v in state.items() if k.startswith("pixel_")}
        vqgan["encoder.conv_in.weight"] = torch.zeros(128, 3, 3, 3)  # MaskGIT-VQGAN's encoder: left out
        torch.save(vqgan, folder / "maskgit-vqgan-imagenet-f16-256.bin")
        torch.save({k: v for k, v in state.items() if not k.startswith("pixel_")}, folder / "pytorch_model.bin")
    else:
        save_file(state, str(folder / "model.safetensors"))
    return folder


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One-D-Piece (64 tokens) and TiTok (32 tokens) checkpoints, the One-D-Piece one imported."""
    from vtcodec.importer import import_model

    root = tmp_path_factory.mktemp("imported")
    odp = write_checkpoint(root / "odp", "one-d-piece", 64, "bin")
    titok = write_checkpoint(root / "titok", "titok", 32, "safetensors")
    images = root / "fit"
    images.mkdir()
    random_image(128, 64, seed=3).save(images / "a.png")
    random_image(64, 64, seed=4).save(images / "b.png")
    models = root / "models"
    vqgan = odp / "maskgit-vqgan-imagenet-f16-256.bin"
    import_model(odp, "one-d-piece", "odp-t", [images], models, pixel_decoder=vqgan)
    return {"odp": odp, "titok": titok, "fit": images, "models": models, "root": root}


@pytest.fixture
def model_dir(imported, monkeypatch) -> Path:
    """The imported models' folder, the only one searched (not the repository's legacy models)."""
    monkeypatch.setattr(registry, "_extra_dirs", [])
    monkeypatch.setenv(registry.MODEL_DIR_ENV, str(imported["models"]))
    return imported["models"]


def test_import_then_every_command(imported, model_dir, tmp_path, cli_run) -> None:
    code, out, _ = cli_run("model", "list")
    assert code == 0 and out.startswith("odp-t\t")
    image = tmp_path / "in.png"
    random_image(128, 64, seed=7).save(image)
    code, _, err = cli_run("encode", image, "-o", tmp_path / "a.vtk", "--model", "odp-t", "--tokens", "8")
    assert code == 0, err
    code, out, _ = cli_run("info", tmp_path / "a.vtk", "--json")
    info = json.loads(out)
    assert info["tile_size"] == 64 and info["tokens_per_tile"] == [8, 8]
    code, _, err = cli_run("decode", tmp_path / "a.vtk", "-o", tmp_path / "a.png")  # the model found by its id
    assert code == 0, err
    decoded = np.asarray(Image.open(tmp_path / "a.png"))
    from vtcodec import codec
    from vtcodec.zoo import load_model

    loaded = load_model("odp-t")
    tokens = codec.tokenize(Image.open(image).convert("RGB"), loaded)
    tiles = loaded.model.decode(torch.from_numpy(tokens.ids[:, :8]))
    direct = tiles.mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(decoded, np.concatenate(list(direct), axis=1))  # two tiles side by side
    code, _, err = cli_run("encode", image, "-o", tmp_path / "b.vtk", "--model", "odp-t", "--bytes", "120", "-Q")
    assert code == 0, err
    assert (tmp_path / "b.vtk").stat().st_size <= 120
    code, _, err = cli_run("truncate", tmp_path / "a.vtk", "-o", tmp_path / "c.vtk", "--tokens", "4")
    assert code == 0, err
    code, _, err = cli_run("decode", tmp_path / "c.vtk", "-o", tmp_path / "c.png")
    assert code == 0, err
    args = ["--codecs", "vtcodec", "--metrics", "psnr-rgb", "--model", "odp-t", "--tokens", "2,8", "--quiet"]
    code, _, err = cli_run("bench", imported["fit"], "--out", tmp_path / "bench", *args)
    assert code == 0, err
    entries = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert next(e for e in entries if e["name"] == "vtcodec")["results"]["tokens"] == [2, 8]
    code, _, err = cli_run("encode", imported["fit"], "-o", tmp_path / "batch", "--model", "odp-t", "--tokens", "4")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "batch").iterdir()) == ["a.vtk", "b.vtk"]
    code, _, err = cli_run("tokens", imported["fit"], "-o", tmp_path / "shards", "--model", "odp-t", "--quiet")
    assert code == 0, err
    import vtcodec  # noqa: F401 - registers the Pillow plugin

    with Image.open(tmp_path / "a.vtk") as opened:  # the model found by its id, through Pillow
        assert np.array_equal(np.asarray(opened.convert("RGB")), decoded)


def test_fixed_length_titok(imported, model_dir, tmp_path, cli_run) -> None:
    code, out, err = cli_run(
        "model", "import", "titok", imported["titok"], "--name", "titok-t", "--fit-on", imported["fit"], "--limit", "1"
    )
    assert code == 0, err
    assert "titok-t" in out and "bits per token" in out
    image = imported["fit"] / "a.png"
    code, _, err = cli_run("encode", image, "-o", tmp_path / "t.vtk", "--model", "titok-t")  # all 32 tokens
    assert code == 0, err
    code, out, _ = cli_run("info", tmp_path / "t.vtk", "--json")
    assert json.loads(out)["tokens_per_tile"] == [32, 32]
    assert [layer["tokens"] for layer in json.loads(out)["layers"]] == [32]  # one layer: no prefix decodes
    code, _, err = cli_run("decode", tmp_path / "t.vtk", "-o", tmp_path / "t.png")
    assert code == 0, err
    for args in (["--tokens", "16"], ["--bytes", "200"]):
        code, _, err = cli_run("encode", image, "-o", tmp_path / "u.vtk", "--model", "titok-t", *args)
        assert_one_line_error(code, err)
        assert "decodes only all 32 tokens" in err
    code, _, err = cli_run("truncate", tmp_path / "t.vtk", "-o", tmp_path / "v.vtk", "--bytes", "100")
    assert_one_line_error(code, err)
    code, _, err = cli_run("encode", imported["fit"], "-o", tmp_path / "batch", "--model", "titok-t")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "batch").iterdir()) == ["a.vtk", "b.vtk"]


def test_bad_checkpoints_are_one_line_errors(imported, model_dir, tmp_path, cli_run) -> None:
    fit = ["--fit-on", imported["fit"], "--model-dir", tmp_path / "m"]
    code, _, err = cli_run("model", "import", "one-d-piece", imported["odp"], "--name", "x", *fit)
    assert_one_line_error(code, err)
    assert "--pixel-decoder" in err
    weights = imported["titok"] / "model.safetensors"
    code, _, err = cli_run("model", "import", "titok", weights, "--preset", "titok-s128", "--name", "x", *fit)
    assert_one_line_error(code, err)  # 64-pixel weights under the 256-pixel preset
    assert "do not fit" in err
    evil = tmp_path / "evil.bin"
    torch.save({"a": torch.zeros(1), "f": print}, evil)  # a pickle that names a function
    code, _, err = cli_run("model", "import", "titok", evil, "--preset", "titok-s128", "--name", "x", *fit)
    assert_one_line_error(code, err)
    code, _, err = cli_run("model", "import", "titok", imported["titok"], "--name", "../x", *fit)
    assert_one_line_error(code, err)
    code, _, err = cli_run("model", "import", "odp", imported["titok"], "--name", "x", *fit)
    assert_one_line_error(code, err)
    again = ["model", "import", "titok", imported["titok"], "--name", "odp-t", "--fit-on", imported["fit"]]
    code, _, err = cli_run(*again)
    assert_one_line_error(code, err)  # exists: --force to replace
    assert not (tmp_path / "m").exists()


def test_the_codec_stages_do_not_name_a_tokenizer() -> None:
    """The seam (vtcodec.models.seam): these stages work with any token space."""
    stages = ["container.py", "rate.py", "codec.py", "pipeline.py", "batch.py", "entropy.py", "pillow.py"]
    stages += ["bench/run.py", "bench/codecs.py", "datasets/__init__.py", "datasets/shards.py", "cli/coding.py"]
    for stage in stages:
        assert "ConvTokenizer" not in (ROOT / "vtcodec" / stage).read_text(), stage
