"""Shared fixtures: a tiny randomly initialized model file, and the sample images."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vtcodec import cli, registry
from vtcodec.context_prior import DigitContextPrior
from vtcodec.models import TokenizerConfig, build_model
from vtcodec.prior import TokenPrior
from vtcodec.zoo import context_layout, load_model, save_model

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SHARED = ROOT.parent / "shared" / "data"
LEGACY = ROOT / "models"  # the repository's folder of models that the wheel does not ship

if LEGACY.is_dir():
    registry.add_model_dir(LEGACY)


def installed(model_id: str) -> bool:
    """Whether the registered model with this id (hex) is installed here."""
    entry = registry.load_manifest().model(bytes.fromhex(model_id))
    return entry is not None and registry.locate(entry) is not None


TINY_CONFIG = TokenizerConfig(tile_size=32, max_tokens=8, channels=(8, 8, 8, 8), fsq_levels=(5, 3))


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random model whose priors are fitted on its own tokens of random tiles."""
    torch.manual_seed(0)
    model = build_model(TINY_CONFIG).eval()
    tokens = model.encode(torch.rand(64, 3, 32, 32)).numpy()
    prior = TokenPrior.fit(tokens, model.codebook_size)
    groups, group_of, neighbours = context_layout(model)
    context = DigitContextPrior.fit(tokens, TINY_CONFIG.fsq_levels, groups, neighbours, group_of=group_of)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(model, prior, path, context)
    return path


@pytest.fixture(scope="session")
def tiny_model(tiny_model_path: Path):
    return load_model(tiny_model_path)


@pytest.fixture(scope="session")
def sample_paths() -> list[Path]:
    return sorted(SAMPLES.glob("*.png"))


def random_image(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (max(1, height // 8 + 1), max(1, width // 8 + 1), 3), dtype=np.uint8)
    return Image.fromarray(base).resize((width, height), Image.Resampling.BILINEAR)


def image_folder(folder: Path, count: int, width: int, height: int) -> Path:
    """``folder`` (created) holding ``count`` random images ``0.png`` ... of ``width x height``."""
    folder.mkdir()
    for i in range(count):
        random_image(width, height, seed=i).save(folder / f"{i}.png")
    return folder


def run(args, capsys, monkeypatch):
    import vtcodec

    monkeypatch.setattr(sys, "argv", ["vtcodec", *map(str, args)])
    # --max-pixels sets these process-wide limits: restore them after the command.
    monkeypatch.setattr(vtcodec, "MAX_PIXELS", vtcodec.MAX_PIXELS)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.fixture
def cli_run(capsys, monkeypatch):
    return lambda *args: run(args, capsys, monkeypatch)


def assert_one_line_error(code, err):
    assert code != 0
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
