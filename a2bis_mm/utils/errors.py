"""Errors that are the user's input, not a bug: the tools print them as one line (see ``cli.py``).

``ToolInputError`` is a ``ValueError``; the dataset errors subclass it, so a data set that cannot be
used stops ``tools/train.py`` with one line whether it is found by the tool's own checks or by the
dataset class while the runner builds it. ``DatasetNotFoundError`` is also a ``FileNotFoundError``
for callers that catch that.
"""

#: Exit status of the tools for bad usage / bad input (argparse uses the same).
EXIT_USAGE = 2


class ToolInputError(ValueError):
    """A user-facing input problem; the tools print ``error: <message>`` and exit with status 2."""


class DatasetError(ToolInputError):
    """The data a dataset is pointed at cannot be used (e.g. a folder with no usable file)."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A folder or file a dataset needs does not exist."""
