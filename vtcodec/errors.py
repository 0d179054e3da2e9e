"""The exceptions vtcodec raises for bad input; the CLI prints them as one line."""


class VtcodecError(Exception):
    """Base class of every error vtcodec reports to users."""


class InputError(VtcodecError):
    """An input file or option cannot be used (missing, not an image, bad value)."""


class UsageError(InputError):
    """An option or argument is not usable whatever the files hold (a bad value, a bad combination); exit 2."""


class FormatError(VtcodecError):
    """A ``.vtk`` stream is corrupt, truncated, or of an unsupported version."""


class UnknownModelError(VtcodecError):
    """A ``.vtk`` file names a model id that no available model has."""


class OutputExistsError(VtcodecError):
    """The output exists and ``force`` was not given."""


class VtcodecWarning(UserWarning):
    """Something was done differently from what was asked, and the user should know (one line)."""


class LibraryWarning(UserWarning):
    """What a library (Pillow, libtiff) said while vtcodec read a file; the CLI shows it with ``--verbose``."""
