"""The one error type for bad dataset input."""

from __future__ import annotations

from autotransfer.errors import UserInputError


class DatasetError(UserInputError):
    """A dataset reference, file or folder that cannot be used as given.

    The message names the bad value (a path, a key, a label) and says how to fix it. The
    class takes a single message argument on purpose: PyTorch's ``DataLoader`` rebuilds
    worker exceptions as ``type(exc)(message)``, so a ``DatasetError`` raised while
    decoding a file inside a worker process reaches the caller as a ``DatasetError`` that
    still names the file.
    """
