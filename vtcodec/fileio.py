"""Safe output: atomic writes that never overwrite without ``force``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from vtcodec.errors import InputError, OutputExistsError


def check_readable(path: Path) -> None:
    """Raise :class:`InputError` if ``path`` is missing or a directory."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory")


def read_input(path: Path) -> bytes:
    """The bytes of an input file, or :class:`InputError` with a one-line reason."""
    check_readable(path)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None


def check_writable(path: Path, force: bool) -> None:
    """Raise if ``path`` exists (without ``force``) or is a directory."""
    if path.is_dir():
        raise InputError(f"{path}: is a directory")
    if path.exists() and not force:
        raise OutputExistsError(f"{path}: already exists (use --force to overwrite)")


def write_atomic(path: Path, data: bytes, force: bool = False) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it into place."""
    path = Path(path)
    check_writable(path, force)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    except FileNotFoundError:
        raise InputError(f"{path}: output folder does not exist") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except OSError as exc:  # a read-only file system, a full disk, a path through a file, ...
        raise InputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if not force and path.exists():
            raise OutputExistsError(f"{path}: already exists (use --force to overwrite)")
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise InputError(f"{path}: cannot write ({exc.strerror or exc})") from None
        raise


def make_dir(path: Path) -> None:
    """Create the folder ``path`` (and its parents), or raise :class:`InputError` with a one-line reason."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{path}: cannot create the folder ({exc.strerror or exc})") from None


def make_parent(path: Path) -> None:
    """Create the folder ``path`` goes into, or raise :class:`InputError` with a one-line reason."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{path}: cannot create its folder ({exc.strerror or exc})") from None
