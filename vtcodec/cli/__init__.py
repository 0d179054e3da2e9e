"""The ``vtcodec`` command line: a thin layer over the Python API.

``common`` holds the typer app, the shared options and :func:`main` (errors become one
line and an exit code); each command module registers its commands on the app, in the
order ``vtcodec --help`` lists them.
"""

# ruff: noqa: I001 (the import order is the order of the commands in --help)
from vtcodec.cli import coding  # noqa: F401
from vtcodec.cli import training  # noqa: F401
from vtcodec.cli import benchmark  # noqa: F401
from vtcodec.cli import models  # noqa: F401
from vtcodec.cli.common import app, main

__all__ = ["app", "main"]
