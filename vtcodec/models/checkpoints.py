"""Reading a user's TiTok or One-D-Piece checkpoint, in the forms the published code saves, safely.

- A folder, as TiTok's hub folders are saved (``PyTorchModelHubMixin``): ``config.json`` and
  ``model.safetensors`` or ``pytorch_model.bin``.
- A weights file (``.safetensors``, or ``.bin``: a raw state dict, as One-D-Piece's inference
  script reads it), with a config: a preset name (``vtcodec.models.titok.PRESETS``) or a JSON file.
- Without ``pixel_*`` tensors, the MaskGIT-VQGAN file (``maskgit-vqgan-imagenet-f16-256.bin``)
  supplies them: its ``quantize.*`` and ``decoder.*`` tensors, under the prefix ``pixel_`` (as
  One-D-Piece's script merges them; its ``encoder.*`` tensors are left out).

``.bin`` files load with ``torch.load(weights_only=True)``: tensors only, no code is unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from vtcodec.errors import InputError, UsageError
from vtcodec.models.titok import PRESETS, TiTokConfig, TiTokTokenizer

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` or ``.bin`` file; :class:`InputError` if it holds anything else."""
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
                state = state["state_dict"]
    except (OSError, SafetensorError, RuntimeError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: cannot read the weights ({str(exc).splitlines()[0][:200]})") from None
    except Exception as exc:
        raise InputError(f"{path}: not a plain state dict of tensors ({type(exc).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path}: not a state dict of tensors")
    return state


def read_config(source: Path, family: str, preset: str | None) -> TiTokConfig:
    """The model's config: ``preset``, else the folder's (or the given) JSON file."""
    if preset is not None:
        if preset not in PRESETS:
            raise UsageError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
        config = PRESETS[preset]
        if config.architecture != family:
            raise UsageError(f"preset {preset} is a {config.architecture} model, not {family}")
        return config
    path = source / "config.json" if source.is_dir() else source
    if path.suffix != ".json" or not path.is_file():
        raise UsageError(f"{source}: no config.json; name the published config with --preset ({', '.join(PRESETS)})")
    try:
        return TiTokConfig.from_published(json.loads(path.read_text()), family)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a usable TiTok config ({exc})") from None


def weights_file(source: Path) -> Path:
    if source.is_file():
        return source
    found = next((source / name for name in WEIGHT_FILES if (source / name).is_file()), None)
    if found is None:
        raise InputError(f"{source}: no weights ({' or '.join(WEIGHT_FILES)})")
    return found


def load_checkpoint(
    source: str | Path,
    family: str,
    preset: str | None = None,
    config_file: str | Path | None = None,
    pixel_decoder: str | Path | None = None,
) -> TiTokTokenizer:
    """A TiTok-family model from a published checkpoint (a folder or a weights file), on the CPU, in eval mode."""
    source = Path(source)
    if not source.exists():
        raise InputError(f"{source}: no such file or folder")
    config = read_config(Path(config_file) if config_file else source, family, preset)
    state = read_state(weights_file(source))
    if config.is_legacy and not any(k.startswith("pixel_") for k in state):
        if pixel_decoder is None:
            raise UsageError(
                "the checkpoint has no pixel decoder: pass MaskGIT-VQGAN's weights with --pixel-decoder "
                "(maskgit-vqgan-imagenet-f16-256.bin)"
            )
        vqgan = read_state(Path(pixel_decoder))
        state.update({f"pixel_{k}": v for k, v in vqgan.items() if not k.startswith("encoder.")})
    model = TiTokTokenizer(config)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unknown = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unknown or wrong:
        what = (
            f"missing {missing[:3]}"
            if missing
            else f"unexpected {unknown[:3]}"
            if unknown
            else f"{wrong[0]} is {tuple(state[wrong[0]].shape)}, the config says {tuple(expected[wrong[0]].shape)}"
        )
        raise InputError(f"{source}: the weights do not fit the {family} config ({what}); check --preset")
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.eval()
