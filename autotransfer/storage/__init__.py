"""Where studies live: storage references parsed once, opened, and locked per study."""

from __future__ import annotations

from autotransfer.storage._lock import study_lock
from autotransfer.storage._open import open_storage, study_names
from autotransfer.storage._url import DEFAULT_STORAGE, StorageURL

__all__ = ["DEFAULT_STORAGE", "StorageURL", "open_storage", "study_lock", "study_names"]
