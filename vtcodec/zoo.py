"""Model files: safetensors weights with their config and prior.

A model file is one ``.safetensors`` file holding the network's tensors (fp16 for the grid
family; float32 for the TiTok family, whose tokens float16 weights would change),
the per-position prior's integer table under ``prior.freqs`` (int32), optionally
the digit-context prior's tables under ``context.digit0`` ... (int16; grid layout
only), and the JSON config in the metadata key ``vtcodec.config``. Nothing is unpickled.

A model file defines a token space. Its model id, written into every ``.vtk`` file,
is the first 8 bytes of the SHA-256 of the file, unless the metadata key
``vtcodec.model_id`` names it: a **token-space file** keeps the id of the full
model file it was cut from, and may leave the decoder out (its decoders are
decoder files, ``vtcodec.decoders``). Which files are known, and where they are,
is the registry's business (``vtcodec.registry``).
"""

from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load as load_numpy
from safetensors.torch import save as save_torch

from vtcodec import registry
from vtcodec.container import MODEL_ID_BYTES
from vtcodec.context_prior import DigitContextPrior, token_layout
from vtcodec.errors import InputError, UsageError
from vtcodec.fileio import write_atomic
from vtcodec.models import (
    ConvTokenizer,
    ModelConfig,
    TokenSpace,
    config_from_dict,
    declared_network,
    inference_network,
)
from vtcodec.prior import TokenPrior
from vtcodec.registry import CONFIG_KEY, DECODER_PREFIXES, MODEL_ID_KEY, model_id_of

PRIOR_KEY = "prior.freqs"
CONTEXT_KEY = "context.digit{}"

_cache: dict[Path, LoadedModel] = {}
_device_cache: dict[tuple[Path, str], LoadedModel] = {}
_search_paths: list[Path] = []
_lock = threading.Lock()


@dataclass(frozen=True)
class LoadedModel:
    """A ready-to-use tokenizer (any token space, ``vtcodec.models.seam``) with its prior and identity."""

    model: TokenSpace
    prior: TokenPrior
    model_id: bytes
    config: ModelConfig
    path: Path | None
    context: DigitContextPrior | None = None
    has_decoder: bool = True  # False: a token-space file; its decoders are decoder files

    @property
    def codebook_size(self) -> int:
        return self.model.codebook_size

    @property
    def any_prefix(self) -> bool:
        """Whether a prefix of a tile's tokens decodes (else every tile keeps all of them)."""
        return self.model.any_prefix

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
        raise UsageError(f"unknown device {device!r} (use auto, cpu or cuda)")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("CUDA was asked for, but torch sees no CUDA device")
    return torch.device(device)


def context_layout(model: TokenSpace) -> tuple[int, np.ndarray, np.ndarray] | None:
    """The digit-context prior's layout of a grid-family model in the grid layout; None for others.

    Returns (groups, the group of each position, the neighbour map).
    """
    if not isinstance(model, ConvTokenizer) or model.config.layout != "grid":
        return None
    scales = [(model.side, model.groups, model.order.cpu().numpy())]
    if model.fine_groups:
        scales.append((model.fine_side, model.fine_groups, model.fine_order.cpu().numpy()))
    group_of, neighbours = token_layout(scales)
    return model.groups + model.fine_groups, group_of, neighbours


def serialize_model(
    model: TokenSpace,
    prior: TokenPrior,
    context: DigitContextPrior | None = None,
    token_space_of: bytes | None = None,
    metadata: dict[str, str] | None = None,
) -> bytes:
    """The bytes of a model file: weights (``config.weights_dtype``), int32 prior table, int16 context
    tables, JSON config.

    With ``token_space_of`` (a model id) it is a token-space file: no decoder tensors, and that id.
    ``metadata`` adds header entries (an imported model's name and id).
    """
    dtype = getattr(torch, type(model.config).weights_dtype)
    tensors = {
        k: v.detach().to("cpu", dtype).contiguous()
        for k, v in model.state_dict().items()
        if token_space_of is None or not k.startswith(DECODER_PREFIXES)
    }
    tensors[PRIOR_KEY] = torch.from_numpy(prior.freqs.astype(np.int32))
    for d, table in enumerate(context.tables if context is not None else ()):
        tensors[CONTEXT_KEY.format(d)] = torch.from_numpy(table.astype(np.int16))
    header = {CONFIG_KEY: json.dumps(model.config.to_dict(), sort_keys=True), **(metadata or {})}
    if token_space_of is not None:
        header[MODEL_ID_KEY] = token_space_of.hex()
    return save_torch(tensors, metadata=header)


def check_tensors(
    declared: dict[str, tuple[int, ...]], tensors: dict[str, np.ndarray], optional: tuple[str, ...] = ()
) -> None:
    """``ValueError`` unless ``tensors`` are the ``declared`` names and shapes (names starting with
    ``optional`` may be absent); run before any network is built."""
    unknown = [k for k in tensors if k not in declared]
    missing = [k for k in declared if k not in tensors and not k.startswith(optional)]
    wrong = [k for k in tensors if k in declared and tuple(tensors[k].shape) != declared[k]]
    if unknown or missing or wrong:
        what = f"unknown tensors {unknown[:3]}" if unknown else f"missing tensors {missing[:3]}" if missing else ""
        what = what or f"{wrong[0]} is {tuple(tensors[wrong[0]].shape)}, declared {declared[wrong[0]]}"
        raise ValueError(f"tensors do not fit the declared architecture: {what}")


def parse_model(data: bytes, path: Path | None = None) -> LoadedModel:
    """Build a model from the bytes of a model file; raise :class:`InputError` if it is not one."""
    where = str(path) if path else "model"
    try:
        tensors = load_numpy(data)
        header_len = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8 : 8 + header_len]).get("__metadata__", {})
        config = config_from_dict(json.loads(metadata[CONFIG_KEY]))
        prior = TokenPrior(tensors.pop(PRIOR_KEY))
        tables = []
        while CONTEXT_KEY.format(len(tables)) in tensors:
            tables.append(tensors.pop(CONTEXT_KEY.format(len(tables))))
        has_decoder = any(k.startswith(DECODER_PREFIXES) for k in tensors)
        model = declared_network(config)  # on the meta device
        declared = {name: tuple(t.shape) for name, t in model.state_dict().items()}
        check_tensors(declared, tensors, () if has_decoder else DECODER_PREFIXES)
        state = {k: torch.from_numpy(v.astype(np.float32, copy=False)) for k, v in tensors.items()}
        model_id = bytes.fromhex(metadata[MODEL_ID_KEY]) if MODEL_ID_KEY in metadata else model_id_of(data)
        if len(model_id) != MODEL_ID_BYTES:
            raise ValueError(f"model id of {len(model_id)} bytes")
        model = inference_network(model, state, () if has_decoder else DECODER_PREFIXES)
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
    return LoadedModel(model, prior, model_id, config, path, context, has_decoder)


def model_path(spec: str | Path | None) -> Path:
    """The file a ``--model`` names: a path, the name of an imported model, or None for the default."""
    return default_weights() if spec is None else registry.model_file(spec).resolve()


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu") -> LoadedModel:
    """Load (and cache) a model file on ``device``: a path, an imported model's name, or ``None``
    for the shipped default model."""
    resolved = model_path(path)
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
            state = {k: v.to(target) for k, v in cpu.model.state_dict().items()}
            model = inference_network(declared_network(cpu.config), state).to(target)  # .to: the constant buffers
            _device_cache[key] = LoadedModel(
                model, cpu.prior, cpu.model_id, cpu.config, cpu.path, cpu.context, cpu.has_decoder
            )
        return _device_cache[key]


def default_weights() -> Path:
    """The shipped default model's file."""
    return registry.WEIGHTS_DIR / registry.load_manifest().default_model().file


def check_shipped(path: Path, data: bytes) -> None:
    """Refuse a registered file (in the package or a model folder) whose bytes differ from its SHA-256."""
    entry = registry.entry_for_path(path)
    if entry is not None:
        registry.verify(path, data, entry)


def save_model(
    model: TokenSpace, prior: TokenPrior, path: str | Path, context: DigitContextPrior | None = None
) -> bytes:
    """Write a model file atomically and return its model id."""

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
    """The model with this id: among ``candidates`` and registered paths, else the registry's, on ``device``."""
    for path in [*(candidates or []), *_search_paths]:
        loaded = load_model(path)
        if loaded.model_id == model_id:
            return loaded if str(device) == "cpu" else load_model(path, device)
    return load_model(registry.model_with_id(model_id), device)
