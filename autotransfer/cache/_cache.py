"""The feature cache: an in-memory LRU in front of an on-disk store shared between processes."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from filelock import Timeout

from autotransfer.cache._disk import DiskStore
from autotransfer.cache._key import FeatureKey
from autotransfer.cache._memory import Features, MemoryLRU
from autotransfer.storage import StorageURL

log = logging.getLogger(__name__)

DEFAULT_MEMORY_BYTES = 2 * 2**30


def default_cache_dir() -> Path:
    """``$AUTOTRANSFER_CACHE_DIR``, else ``$XDG_CACHE_HOME/autotransfer/features``, else
    ``~/.cache/autotransfer/features``."""
    explicit = os.environ.get("AUTOTRANSFER_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "autotransfer" / "features"


class FeatureCache:
    """Frozen-prefix features keyed by :class:`FeatureKey`, computed once per machine.

    Lookups go memory LRU (``memory_bytes``) → disk (``directory``, memory-mapped, shared by
    every process that opens the same folder) → compute. Computing holds a file lock on the
    key, so of several processes asking at once one computes and the others read its result.
    ``directory=None`` keeps the cache in this process only. ``fp16=True`` stores half the
    bytes; training then sees features rounded to fp16 (the first trial too, so every trial
    of a key trains on identical inputs).

    Writes are atomic (see ``_disk.py``); a reader never sees a partial entry.
    """

    def __init__(
        self,
        directory: Path | str | None = None,
        memory_bytes: int = DEFAULT_MEMORY_BYTES,
        fp16: bool = False,
        *,
        lock_timeout_s: float = 3600.0,
    ) -> None:
        self.memory = MemoryLRU(memory_bytes)
        self.disk = DiskStore(directory) if directory is not None else None
        self.fp16 = fp16
        self.lock_timeout_s = lock_timeout_s
        self.hits_memory = 0
        self.hits_disk = 0
        self.misses = 0
        self._noted: set[str] = set()
        self._compute_lock = threading.Lock()

    @property
    def directory(self) -> Path | None:
        return self.disk.directory if self.disk is not None else None

    @property
    def storage_dtype(self) -> str:
        return "float16" if self.fp16 else "float32"

    def __repr__(self) -> str:
        return (
            f"FeatureCache(directory={self.directory}, memory_bytes={self.memory.budget_bytes}, "
            f"fp16={self.fp16})"
        )

    def get_or_compute(self, key: FeatureKey, compute: Callable[[], Features]) -> Features:
        """The features of ``key``, calling ``compute`` only if no process has them yet."""
        digest = key.digest()
        found = self.memory.get(digest)
        if found is not None:
            self.hits_memory += 1
            return found
        with self._compute_lock:  # threads of one process: compute once as well
            if self.disk is None:
                found = self.memory.get(digest)
                if found is None:
                    found = self._computed(key, compute)
                    self.memory.put(digest, found)
                else:
                    self.hits_memory += 1
                return found
            found = self.disk.load(digest)
            if found is None:
                found = self._load_or_compute_locked(key, digest, compute)
            else:
                self.hits_disk += 1
            self.memory.put(digest, found)
            return found

    def _load_or_compute_locked(
        self, key: FeatureKey, digest: str, compute: Callable[[], Features]
    ) -> Features:
        assert self.disk is not None
        try:
            with self.disk.lock(digest, self.lock_timeout_s):
                found = self.disk.load(digest)  # another process may have finished meanwhile
                if found is not None:
                    self.hits_disk += 1
                    return found
                features = self._computed(key, compute)
                self.disk.save(digest, features, asdict(key))
                # hand out the mapped copy: the first trial reads exactly what later ones will
                return self.disk.load(digest) or features
        except Timeout:
            log.warning(
                "feature cache lock %s held for over %.0f s; computing without the cache",
                digest,
                self.lock_timeout_s,
            )
            return self._computed(key, compute)

    def _computed(self, key: FeatureKey, compute: Callable[[], Features]) -> Features:
        self.misses += 1
        log.info("feature cache miss: computing %s", key.describe())
        features = compute()
        dtype = torch.float16 if self.fp16 else torch.float32
        return Features(features.train.to(dtype), features.val.to(dtype))

    def note_bypass(self, reason: str) -> None:
        """Log why a trial runs uncached, once per reason and cache."""
        if reason not in self._noted:
            self._noted.add(reason)
            log.info("feature cache bypassed: %s", reason)

    def clear(self) -> None:
        """Empty the memory LRU and delete every entry on disk."""
        self.memory.clear()
        if self.disk is not None:
            self.disk.clear()


def make_cache(
    enabled: bool = True,
    directory: str | Path | None = None,
    *,
    storage: str | StorageURL | None = None,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    fp16: bool = False,
) -> FeatureCache | None:
    """The cache a search worker uses (one function, so every backend builds the same one).

    ``directory=None`` puts it beside a SQLite or journal ``storage`` file
    (``study.db`` → ``study-features/``), else in :func:`default_cache_dir`.
    ``enabled=False`` returns None: trials run uncached.
    """
    if not enabled:
        return None
    if directory is None:
        beside = StorageURL.parse(storage).folder_beside("-features") if storage else None
        directory = beside or default_cache_dir()
    return FeatureCache(Path(directory), memory_bytes=memory_bytes, fp16=fp16)
