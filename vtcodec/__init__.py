"""vtcodec: a learned very-low-bitrate image codec built on a variable-length 1D tokenizer.

>>> import vtcodec
>>> data = vtcodec.compress(image, tokens=64)   # bytes of a .vtk file
>>> image = vtcodec.decompress(data)            # PIL.Image.Image, original size
"""

import importlib

from vtcodec import pillow  # registers the .vtk format with Pillow (torch-free)
from vtcodec.container import DEFAULT_MAX_PIXELS
from vtcodec.errors import (
    FormatError,
    InputError,
    OutputExistsError,
    UnknownModelError,
    UsageError,
    VtcodecError,
    VtcodecWarning,
)
from vtcodec.registry import add_model_dir

# The rest of the API needs torch; it is imported on first use, so that `import vtcodec`, the
# Pillow plugin's registration, `vtcodec --help` and `vtcodec info` start without it.
_LAZY = {
    "vtcodec.codec": (
        "DEFAULT_TOKENS",
        "EncodeResult",
        "compress",
        "decode_progressive",
        "decompress",
        "encode",
        "render",
        "tokenize",
        "truncate",
    ),
    "vtcodec.decoders": ("decoder_names", "load_decoder"),
    "vtcodec.pipeline": ("Layout", "read_tokens"),
    "vtcodec.zoo": ("load_model", "register_model_path"),
}
_LAZY_MODULE = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str):
    if name in _LAZY_MODULE:
        value = getattr(importlib.import_module(_LAZY_MODULE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vtcodec' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_MODULE})


__version__ = "0.6.0"  # the one place; pyproject.toml reads it

MAX_PIXELS: int | None = DEFAULT_MAX_PIXELS  # images above this are refused (encode and decode); None: no limit

__all__ = [
    "DEFAULT_TOKENS",
    "MAX_PIXELS",
    "EncodeResult",
    "FormatError",
    "InputError",
    "Layout",
    "OutputExistsError",
    "UnknownModelError",
    "UsageError",
    "VtcodecError",
    "VtcodecWarning",
    "add_model_dir",
    "compress",
    "decode_progressive",
    "decoder_names",
    "decompress",
    "encode",
    "load_decoder",
    "load_model",
    "pillow",
    "read_tokens",
    "register_model_path",
    "render",
    "tokenize",
    "truncate",
]
