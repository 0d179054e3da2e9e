"""Shipped and user-supplied models: safetensors weights with their config and prior.

A model file is one ``.safetensors`` file holding the network's tensors (fp16),
the per-position prior's integer table under ``prior.freqs`` (int32), optionally
the digit-context prior's tables under ``context.digit0`` ... (int16; grid layout
only), and the JSON config in the metadata key ``vtcodec.config``. Nothing is unpickled. The model id written
into every ``.vtk`` file is the first 8 bytes of the SHA-256 of the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load as load_numpy
from safetensors.torch import save as save_torch

from vtcodec.container import MODEL_ID_BYTES
from vtcodec.context_prior import DigitContextPrior, token_layout
from vtcodec.errors import InputError, UnknownModelError
from vtcodec.models import ConvTokenizer, TokenizerConfig, build_model
from vtcodec.prior import TokenPrior

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "default.safetensors"
MANIFEST = WEIGHTS_DIR / "MANIFEST.json"  # SHA-256 of every shipped weights file; the decoder registry
PRIOR_KEY = "prior.freqs"
CONTEXT_KEY = "context.digit{}"
CONFIG_KEY = "vtcodec.config"
DECODER_SUFFIX = ".decoder.safetensors"  # decoder files (vtcodec.decoders) beside the model files

_cache: dict[Path, LoadedModel] = {}
_device_cache: dict[tuple[Path, str], LoadedModel] = {}
_search_paths: list[Path] = []
_lock = threading.Lock()


@dataclass(frozen=True)
class LoadedModel:
    """A ready-to-use tokenizer with its prior and identity."""

    model: ConvTokenizer
    prior: TokenPrior
    model_id: bytes
    config: TokenizerConfig
    path: Path | None
    context: DigitContextPrior | None = None

    @property
    def codebook_size(self) -> int:
        return self.model.codebook_size

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.device)


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast for a network on CUDA; a no-op on CPU (tokens stay float32-rounded)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when it is present, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise InputError(f"unknown device {device!r} (use auto, cpu or cuda)")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("CUDA was asked for, but torch sees no CUDA device")
    return torch.device(device)


def model_id_of(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()[:MODEL_ID_BYTES]


def context_layout(model: ConvTokenizer) -> tuple[int, np.ndarray, np.ndarray] | None:
    """(groups, group of each position, neighbour map) of a grid-layout model, for the

    digit-context prior; None for other layouts.
    """
    if model.config.layout != "grid":
        return None
    scales = [(model.side, model.groups, model.order.cpu().numpy())]
    if model.fine_groups:
        scales.append((model.fine_side, model.fine_groups, model.fine_order.cpu().numpy()))
    group_of, neighbours = token_layout(scales)
    return model.groups + model.fine_groups, group_of, neighbours


def serialize_model(model: ConvTokenizer, prior: TokenPrior, context: DigitContextPrior | None = None) -> bytes:
    """The bytes of a model file: fp16 weights, int32 prior table, int16 context tables, JSON config."""
    tensors = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in model.state_dict().items()}
    tensors[PRIOR_KEY] = torch.from_numpy(prior.freqs.astype(np.int32))
    for d, table in enumerate(context.tables if context is not None else ()):
        tensors[CONTEXT_KEY.format(d)] = torch.from_numpy(table.astype(np.int16))
    return save_torch(tensors, metadata={CONFIG_KEY: json.dumps(model.config.to_dict(), sort_keys=True)})


def parse_model(data: bytes, path: Path | None = None) -> LoadedModel:
    """Build a model from the bytes of a model file; raise :class:`InputError` if it is not one."""
    where = str(path) if path else "model"
    try:
        tensors = load_numpy(data)
        header_len = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8 : 8 + header_len]).get("__metadata__", {})
        config = TokenizerConfig.from_dict(json.loads(metadata[CONFIG_KEY]))
        prior = TokenPrior(tensors.pop(PRIOR_KEY).astype(np.int64))
        tables = []
        while CONTEXT_KEY.format(len(tables)) in tensors:
            tables.append(tensors.pop(CONTEXT_KEY.format(len(tables))).astype(np.int64))
        model = build_model(config)
        state = {k: torch.from_numpy(v.astype(np.float32)) for k, v in tensors.items()}
        model.load_state_dict(state)
        context = None
        if tables:
            layout = context_layout(model)
            if layout is None:
                raise ValueError("context tables need the grid layout")
            groups, group_of, neighbours = layout
            context = DigitContextPrior(config.fsq_levels, groups, neighbours, tuple(tables), group_of)
    except (SafetensorError, KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise InputError(f"{where}: not a valid vtcodec model file ({exc})") from None
    if prior.codebook_size != model.codebook_size or prior.max_tokens != model.max_tokens:
        raise InputError(f"{where}: prior table does not match the model")
    model.eval()
    return LoadedModel(model, prior, model_id_of(data), config, path, context)


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu") -> LoadedModel:
    """Load (and cache) a model file on ``device``; ``None`` means the shipped default model."""
    resolved = Path(path).resolve() if path is not None else DEFAULT_WEIGHTS
    target = resolve_device(device) if isinstance(device, str) else device
    with _lock:
        if resolved not in _cache:
            try:
                data = resolved.read_bytes()
            except OSError as exc:
                raise InputError(f"{resolved}: cannot read model file ({exc.strerror})") from None
            check_shipped(resolved, data)
            _cache[resolved] = parse_model(data, resolved)
        cpu = _cache[resolved]
        if target.type == "cpu":
            return cpu
        key = (resolved, str(target))
        if key not in _device_cache:
            model = build_model(cpu.config).to(target)
            model.load_state_dict(cpu.model.state_dict())
            _device_cache[key] = LoadedModel(model.eval(), cpu.prior, cpu.model_id, cpu.config, cpu.path, cpu.context)
        return _device_cache[key]


def check_shipped(path: Path, data: bytes) -> None:
    """Refuse a shipped weights file whose bytes differ from the SHA-256 recorded in the manifest."""
    if path.parent != WEIGHTS_DIR.resolve():
        return
    try:
        expected = json.loads(MANIFEST.read_text())["files"][path.name]
    except (OSError, ValueError, KeyError):
        raise InputError(f"{path}: not listed in the weights manifest; reinstall vtcodec") from None
    if hashlib.sha256(data).hexdigest() != expected:
        raise InputError(f"{path}: shipped weights are damaged or tampered (SHA-256 mismatch); reinstall vtcodec")


def write_manifest() -> None:
    """Record the SHA-256 of every shipped weights file (run after new weights are trained):

    ``python -c "from vtcodec.zoo import write_manifest; write_manifest()"``. The
    manifest's ``decoders`` list (``vtcodec.decoders``) is kept as it is.
    """
    from vtcodec.fileio import write_atomic

    try:
        decoders = json.loads(MANIFEST.read_text()).get("decoders", [])
    except (OSError, ValueError):
        decoders = []
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(WEIGHTS_DIR.glob("*.safetensors"))}
    manifest = {"files": digests, "decoders": decoders}
    write_atomic(MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode(), force=True)


def save_model(
    model: ConvTokenizer, prior: TokenPrior, path: str | Path, context: DigitContextPrior | None = None
) -> bytes:
    """Write a model file atomically and return its model id."""
    from vtcodec.fileio import write_atomic

    data = serialize_model(model, prior, context)
    write_atomic(Path(path), data, force=True)
    return model_id_of(data)


def register_model_path(path: str | Path) -> None:
    """Let files made with the model at ``path`` decode without naming it (e.g. via ``Image.open``)."""
    with _lock:
        if Path(path).resolve() not in _search_paths:
            _search_paths.append(Path(path).resolve())


def find_model(
    model_id: bytes, candidates: list[str | Path] | None = None, device: str | torch.device = "cpu"
) -> LoadedModel:
    """The model with this id among ``candidates``, registered paths and the shipped weights, on ``device``."""
    shipped = [p for p in sorted(WEIGHTS_DIR.glob("*.safetensors")) if not p.name.endswith(DECODER_SUFFIX)]
    paths = list(candidates or []) + list(_search_paths) + shipped
    for path in paths:
        loaded = load_model(path)
        if loaded.model_id == model_id:
            return loaded if str(device) == "cpu" else load_model(path, device)
    raise UnknownModelError(
        f"file was made with unknown model {model_id.hex()}; pass the matching weights with --model"
    )
