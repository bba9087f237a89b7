"""Where studies live: storage references parsed once, opened, and locked per study."""

from __future__ import annotations

from autotransfer.storage._artifacts import artifact_store, artifacts_folder
from autotransfer.storage._lock import study_lock
from autotransfer.storage._open import open_storage
from autotransfer.storage._url import DEFAULT_STORAGE, StorageURL

__all__ = [
    "DEFAULT_STORAGE",
    "StorageURL",
    "artifact_store",
    "artifacts_folder",
    "open_storage",
    "study_lock",
]
