"""Where studies live: storage references parsed once, opened, and locked per study."""

from __future__ import annotations

from autotransfer.storage._artifacts import artifact_store, artifacts_folder
from autotransfer.storage._lock import study_lock
from autotransfer.storage._open import open_storage
from autotransfer.storage._retry import (
    RIDE_OUT_S,
    RetryingRDBStorage,
    StorageUnavailable,
    error_line,
    is_transient,
    ride_out,
)
from autotransfer.storage._url import DEFAULT_STORAGE, StorageURL

__all__ = [
    "DEFAULT_STORAGE",
    "RIDE_OUT_S",
    "RetryingRDBStorage",
    "StorageURL",
    "StorageUnavailable",
    "artifact_store",
    "artifacts_folder",
    "error_line",
    "is_transient",
    "open_storage",
    "ride_out",
    "study_lock",
]
