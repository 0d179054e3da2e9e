"""The registry: every model and decoder vtcodec knows, in one manifest, and where their files are.

``weights/MANIFEST.json`` lists each **model** (a token space: name, file, SHA-256,
model id, role) and each **decoder** (name, token space, file, SHA-256, role, and
whether it is its token space's default). Finding a model by the id in a ``.vtk``
header is one lookup.

Role ``shipped`` files are inside the package (``weights/``); the wheel carries only
the default model and its decoders. Role ``legacy`` files (earlier models, which old
files need) live in **model folders**, searched in this order:

1. folders added with :func:`add_model_dir` (the CLI's ``--model-dir``);
2. ``$VTCODEC_MODEL_DIR`` (several folders separated by ``os.pathsep``);
3. ``$XDG_CACHE_HOME/vtcodec/models``, by default ``~/.cache/vtcodec/models``
   (the convention of torch hub and the Hugging Face caches).

The repository's ``models/`` folder holds every legacy file. Every file is checked
against its SHA-256 before it is parsed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from vtcodec.container import MODEL_ID_BYTES
from vtcodec.errors import InputError, UnknownModelError
from vtcodec.fileio import check_readable, read_input, write_atomic

WEIGHTS_DIR = Path(__file__).parent / "weights"
MANIFEST_NAME = "MANIFEST.json"
MODEL_DIR_ENV = "VTCODEC_MODEL_DIR"
ROLES = ("shipped", "legacy")
HOW_TO_GET = (
    "copy models/{file} from the vtcodec repository into a model folder (--model-dir, or ${env}; now searched: {dirs})"
)

_extra_dirs: list[Path] = []
_manifest_cache: dict[tuple[Path, float], Manifest] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Entry:
    """One registered file: a model (``token_space`` is its model id) or a decoder of a token space."""

    kind: str  # "model" or "decoder"
    name: str
    file: str
    sha256: str
    token_space: bytes
    role: str = "shipped"
    default: bool = False

    def to_dict(self) -> dict:
        key = "model_id" if self.kind == "model" else "token_space"
        record = {"name": self.name, "file": self.file, "sha256": self.sha256, key: self.token_space.hex()}
        return {**record, "role": self.role, **({"default": True} if self.default else {})}


@dataclass(frozen=True)
class Manifest:
    models: tuple[Entry, ...]
    decoders: tuple[Entry, ...]

    def model(self, model_id: bytes) -> Entry | None:
        return next((e for e in self.models if e.token_space == model_id), None)

    def default_model(self) -> Entry:
        return next(e for e in self.models if e.default)

    def decoders_of(self, token_space: bytes) -> list[Entry]:
        """The decoders registered for a token space, its default first."""
        found = [e for e in self.decoders if e.token_space == token_space]
        return sorted(found, key=lambda e: not e.default)

    def by_file(self, name: str) -> Entry | None:
        return next((e for e in (*self.models, *self.decoders) if e.file == name), None)

    def to_dict(self) -> dict:
        return {
            "format": 2,
            "models": [e.to_dict() for e in self.models],
            "decoders": [e.to_dict() for e in self.decoders],
        }


def manifest_path() -> Path:
    return WEIGHTS_DIR / MANIFEST_NAME


def _entry(kind: str, record: dict) -> Entry:
    key = "model_id" if kind == "model" else "token_space"
    role = record.get("role", "shipped")
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    return Entry(
        kind,
        str(record["name"]),
        str(record["file"]),
        str(record["sha256"]),
        bytes.fromhex(record[key]),
        role,
        bool(record.get("default", False)),
    )


def load_manifest(path: Path | None = None) -> Manifest:
    """The registry (cached while the file is unchanged); a damaged manifest is a one-line error."""
    path = path or manifest_path()
    try:
        key = (path, path.stat().st_mtime)
        with _lock:
            if key not in _manifest_cache:
                data = json.loads(path.read_text())
                models = tuple(_entry("model", r) for r in data["models"])
                decoders = tuple(_entry("decoder", r) for r in data["decoders"])
                if sum(e.default for e in models) != 1:
                    raise ValueError("exactly one model must be the default")
                _manifest_cache[key] = Manifest(models, decoders)
            return _manifest_cache[key]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: the model registry is damaged ({exc}); reinstall vtcodec") from None


def save_manifest(manifest: Manifest, path: Path | None = None) -> None:
    text = json.dumps(manifest.to_dict(), indent=2) + "\n"
    write_atomic(path or manifest_path(), text.encode(), force=True)


def add_model_dir(path: str | Path) -> None:
    """Search ``path`` for legacy model and decoder files, before the environment's folders."""
    resolved = Path(path).expanduser().resolve()
    with _lock:
        if resolved not in _extra_dirs:
            _extra_dirs.insert(0, resolved)


def model_dirs() -> list[Path]:
    """The model folders, in search order (they need not exist)."""
    env = [Path(p).expanduser() for p in os.environ.get(MODEL_DIR_ENV, "").split(os.pathsep) if p]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vtcodec" / "models"
    return [*_extra_dirs, *env, cache]


def locate(entry: Entry) -> Path | None:
    """Where the file of ``entry`` is installed, or None."""
    if entry.role == "shipped":
        path = WEIGHTS_DIR / entry.file
        return path if path.exists() else None
    return next((d / entry.file for d in model_dirs() if (d / entry.file).is_file()), None)


def not_installed(entry: Entry) -> str:
    """The one-line message for a registered file that is not installed, saying how to get it."""
    what = f"model {entry.name} ({entry.token_space.hex()})" if entry.kind == "model" else f"decoder {entry.name!r}"
    if entry.role == "shipped":
        return f"{what} is missing from the package ({entry.file}); reinstall vtcodec"
    dirs = ", ".join(str(d) for d in model_dirs())
    return f"{what} is not installed: " + HOW_TO_GET.format(file=entry.file, env=MODEL_DIR_ENV, dirs=dirs)


def installed(entry: Entry) -> Path:
    """Where the file of ``entry`` is installed; one that is not is a one-line error saying how to get it."""
    path = locate(entry)
    if path is None:
        raise UnknownModelError(not_installed(entry))
    return path


def verify(path: Path, data: bytes, entry: Entry) -> None:
    if hashlib.sha256(data).hexdigest() != entry.sha256:
        hint = "reinstall vtcodec" if entry.role == "shipped" else f"get {entry.file} again"
        raise InputError(f"{path}: {entry.kind} file is damaged or tampered (SHA-256 mismatch); {hint}")


CONFIG_KEY = "vtcodec.config"  # safetensors metadata: the model's JSON config
MODEL_ID_KEY = "vtcodec.model_id"  # safetensors metadata: the token space a decoder-less file serves
NAME_KEY = "vtcodec.name"  # safetensors metadata: the name of a model a user imported (vtcodec model import)
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
DECODER_PREFIXES = ("decoder.", "fine_in.", "absent")  # the tensors that only the decoder uses
TILED = "tiled"  # the name of a model file's own per-tile decoder
MAX_HEADER_BYTES = 1 << 24


@dataclass(frozen=True)
class ModelFile:
    """What a model file declares in its safetensors header, read without torch (``vtcodec info``)."""

    path: Path
    model_id: bytes
    codebook_size: int
    has_decoder: bool


def read_model_file(path: str | Path) -> ModelFile:
    """The header facts of the model file at ``path`` (or an imported model's name); :class:`InputError`
    if it is not one. Only the header is read, unless the file's id is its hash."""
    path = model_file(path)
    check_readable(path)
    try:
        header = _header(path)
        metadata = header.get("__metadata__", {})
        config = json.loads(metadata[CONFIG_KEY])
        codebook = int(config["codebook_size"]) if "codebook_size" in config else math.prod(config["fsq_levels"])
        has_decoder = any(k.startswith(DECODER_PREFIXES) for k in header if k != "__metadata__")
        declared = metadata.get(MODEL_ID_KEY)
        model_id = bytes.fromhex(declared) if declared is not None else model_id_of(read_input(path))
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InputError(f"{path}: not a vtcodec model file") from None
    return ModelFile(path, model_id, codebook, has_decoder)


def _header(path: Path) -> dict:
    """The JSON header of the safetensors file at ``path``, reading nothing else; ``ValueError`` if it has none."""
    with path.open("rb") as f:
        size = int.from_bytes(f.read(8), "little")
        if not 0 < size <= MAX_HEADER_BYTES:
            raise ValueError("header length")
        text = f.read(size)
    if len(text) != size:
        raise ValueError("header length")
    header = json.loads(text)
    if not isinstance(header, dict):
        raise ValueError("header")
    return header


def model_id_of(data: bytes) -> bytes:
    """The id of a model file that does not declare one: the first bytes of its SHA-256."""
    return hashlib.sha256(data).digest()[:MODEL_ID_BYTES]


def find_model_file(model_id: bytes, candidates: list[str | Path] | None = None) -> ModelFile:
    """The header of the model with this id, among ``candidates``, else the registry's or an imported
    one (as ``zoo.find_model``)."""
    for path in candidates or []:
        found = read_model_file(path)
        if found.model_id == model_id:
            return found
    return read_model_file(model_with_id(model_id))


def model_with_id(model_id: bytes) -> Path:
    """The installed file of the registered or imported model with this id; :class:`UnknownModelError`
    if there is none, and the registry's one-line message if a registered one is not installed."""
    entry = load_manifest().model(model_id)
    if entry is not None:
        return installed(entry)
    imported = next((path for _, known, path in imported_models() if known == model_id), None)
    if imported is None:
        raise unknown_model(model_id)
    return imported


def model_file(spec: str | Path) -> Path:
    """The file a ``--model`` value names: a path, or the name of an imported model."""
    path = Path(spec)
    if not path.exists() and (named := model_by_name(str(spec))) is not None:
        return named
    return path


def imported_models() -> list[tuple[str, bytes, Path]]:
    """Models a user imported into the model folders (``vtcodec model import``): name, model id, file."""
    found: dict[str, tuple[str, bytes, Path]] = {}
    for folder in model_dirs():
        for path in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
            try:
                metadata = _header(path).get("__metadata__", {})
                name, model_id = metadata.get(NAME_KEY), metadata.get(MODEL_ID_KEY, "")
            except (OSError, ValueError, AttributeError):
                continue  # not a readable safetensors file: not an imported model
            if name == path.stem and name not in found and re.fullmatch(r"[0-9a-f]{16}", model_id):
                found[name] = (name, bytes.fromhex(model_id), path)
    return list(found.values())


def model_by_name(name: str) -> Path | None:
    """The file of the imported model ``name`` (``NAME.safetensors`` in a model folder), or None."""
    if not MODEL_NAME.fullmatch(name):
        return None
    return next((path for known, _, path in imported_models() if known == name), None)


def unknown_model(model_id: bytes) -> UnknownModelError:
    """The error for a file whose model no candidate, registered path or registry entry has."""
    return UnknownModelError(
        f"file was made with unknown model {model_id.hex()}; pass the matching weights with --model"
    )


def decoder_names(model_id: bytes, has_decoder: bool, installed_only: bool = False) -> list[str]:
    """Every decoder registered for the token space ``model_id``, the default first, installed or not
    (``installed_only``: those whose file is here); a model file with a decoder adds its own, ``tiled``."""
    entries = load_manifest().decoders_of(model_id)
    names = [e.name for e in entries if not installed_only or locate(e) is not None]
    return [*names, TILED] if TILED not in names and has_decoder else names


def entry_for_path(path: Path) -> Entry | None:
    """The registry entry of a file inside the package, or inside a model folder under its registered name."""
    manifest = load_manifest()
    entry = manifest.by_file(path.name)
    if entry is None:
        if path.parent == WEIGHTS_DIR.resolve() and path.suffix == ".safetensors":
            raise InputError(f"{path}: not listed in the weights manifest; reinstall vtcodec")
        return None
    home = WEIGHTS_DIR.resolve() if entry.role == "shipped" else None
    in_place = path.parent == home if home else any(path.parent == d.resolve() for d in model_dirs())
    return entry if in_place else None


def update_digests(path: Path | None = None) -> list[str]:
    """Record the SHA-256 of every registered file that is installed (after new weights are trained).

    Returns the files that were not found. Run ``python -m vtcodec.registry`` from the
    repository with ``--model-dir models``.
    """
    manifest = load_manifest(path)
    missing: list[str] = []

    def fresh(entry: Entry) -> Entry:
        located = locate(entry)
        if located is None:
            missing.append(entry.file)
            return entry
        return replace(entry, sha256=hashlib.sha256(located.read_bytes()).hexdigest())

    updated = Manifest(tuple(map(fresh, manifest.models)), tuple(map(fresh, manifest.decoders)))
    save_manifest(updated, path)
    return missing


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Refresh the SHA-256 digests in weights/MANIFEST.json.")
    parser.add_argument("--model-dir", action="append", default=[], help="a folder of legacy files (repeatable)")
    args = parser.parse_args(argv)
    for folder in args.model_dir:
        add_model_dir(folder)
    missing = update_digests()
    print(f"updated {manifest_path()}" + (f"; not found (digests kept): {', '.join(missing)}" if missing else ""))


if __name__ == "__main__":
    main()
