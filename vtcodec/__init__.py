"""vtcodec: a learned very-low-bitrate image codec built on a variable-length 1D tokenizer.

>>> import vtcodec
>>> data = vtcodec.compress(image, tokens=64)   # bytes of a .vtk file
>>> image = vtcodec.decompress(data)            # PIL.Image.Image, original size
"""

from vtcodec import pillow  # registers the .vtk format with Pillow
from vtcodec.codec import (
    DEFAULT_TOKENS,
    EncodeResult,
    compress,
    decompress,
    encode,
    read_tokens,
    render,
    tokenize,
    truncate,
)
from vtcodec.container import DEFAULT_MAX_PIXELS
from vtcodec.decoders import decoder_names, load_decoder
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
from vtcodec.zoo import load_model, register_model_path

__version__ = "0.4.0"  # the one place; pyproject.toml reads it

MAX_PIXELS: int | None = DEFAULT_MAX_PIXELS  # images above this are refused (encode and decode); None: no limit

__all__ = [
    "DEFAULT_TOKENS",
    "MAX_PIXELS",
    "EncodeResult",
    "FormatError",
    "InputError",
    "OutputExistsError",
    "UnknownModelError",
    "UsageError",
    "VtcodecError",
    "VtcodecWarning",
    "add_model_dir",
    "compress",
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
