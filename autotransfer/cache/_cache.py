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

from autotransfer.cache._budget import DEFAULT_DISK_BYTES, DiskBudget, size
from autotransfer.cache._disk import DiskStore
from autotransfer.cache._key import FeatureKey
from autotransfer.cache._memory import Features, MemoryLRU, Shapes
from autotransfer.storage import StorageURL

log = logging.getLogger(__name__)

DEFAULT_MEMORY_BYTES = 2 * 2**30
_SAID: set[str] = set()  # what this process has warned about once already


def default_cache_dir() -> Path:
    """``$AUTOTRANSFER_CACHE_DIR``, else ``$XDG_CACHE_HOME/autotransfer/features``, else
    ``~/.cache/autotransfer/features``."""
    explicit = os.environ.get("AUTOTRANSFER_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "autotransfer" / "features"


Fill = Callable[[Features], None]
"""Writes a feature set into the (zeroed or uninitialised) tensors it is given, row by row."""


class FeatureCache:
    """Frozen-prefix features keyed by :class:`FeatureKey`, computed once per machine.

    Lookups go memory LRU (``memory_bytes``) → disk (``directory``, memory-mapped, shared by
    every process that opens the same folder) → compute. Computing holds a file lock on the
    key, so of several processes asking at once one computes and the others read its result.
    ``directory=None`` keeps the cache in this process only. ``fp16=True`` stores half the
    bytes; training then sees features rounded to fp16 (the first trial too, so every trial
    of a key trains on identical inputs).

    The disk store takes at most ``disk_bytes`` and never fills the disk (see
    ``_budget.py``); a new set is written straight into its memory-mapped files, so it need
    not fit in RAM. A set the disk cannot take is kept in memory when it fits
    ``memory_bytes``, else it is *skipped*: :meth:`get_or_compute` returns None, the trial
    runs its frozen blocks every epoch, and :attr:`skipped` says which set and why.

    Writes are atomic (see ``_disk.py``); a reader never sees a partial entry.
    """

    def __init__(
        self,
        directory: Path | str | None = None,
        memory_bytes: int = DEFAULT_MEMORY_BYTES,
        fp16: bool = False,
        *,
        disk_bytes: int = DEFAULT_DISK_BYTES,
        lock_timeout_s: float = 3600.0,
    ) -> None:
        self.memory = MemoryLRU(memory_bytes)
        self.disk = DiskStore(directory) if directory is not None else None
        self.budget = DiskBudget(self.disk, disk_bytes) if self.disk is not None else None
        self.fp16 = fp16
        self.lock_timeout_s = lock_timeout_s
        self.hits_memory = 0
        self.hits_disk = 0
        self.misses = 0
        self.skipped: dict[str, str] = {}  # FeatureKey.describe() → why it was not stored
        self._noted: set[str] = set()
        self._compute_lock = threading.Lock()

    @property
    def directory(self) -> Path | None:
        return self.disk.directory if self.disk is not None else None

    @property
    def dtype(self) -> torch.dtype:
        return torch.float16 if self.fp16 else torch.float32

    @property
    def storage_dtype(self) -> str:
        return "float16" if self.fp16 else "float32"

    def __repr__(self) -> str:
        disk = self.budget.max_bytes if self.budget is not None else None
        return (
            f"FeatureCache(directory={self.directory}, memory_bytes={self.memory.budget_bytes}, "
            f"disk_bytes={disk}, fp16={self.fp16})"
        )

    def get_or_compute(self, key: FeatureKey, shapes: Shapes, fill: Fill) -> Features | None:
        """The features of ``key`` (of ``shapes``), calling ``fill`` only if no process has
        them yet; None when they fit neither budget (see the class doc)."""
        digest = key.digest()
        found = self.memory.get(digest)
        if found is not None:
            self.hits_memory += 1
            return found
        with self._compute_lock:  # threads of one process: compute once as well
            found = self.memory.get(digest)
            if found is not None:
                self.hits_memory += 1
                return found
            if self.disk is None:
                return self._in_memory(key, digest, shapes, fill, why="no cache folder is set")
            found = self.disk.load(digest)
            if found is None:
                found = self._load_or_compute_locked(key, digest, shapes, fill)
            else:
                self.hits_disk += 1
            if found is not None:
                self.memory.put(digest, found)
            return found

    def _load_or_compute_locked(
        self, key: FeatureKey, digest: str, shapes: Shapes, fill: Fill
    ) -> Features | None:
        assert self.disk is not None and self.budget is not None
        try:
            with self.disk.lock(digest, self.lock_timeout_s):
                found = self.disk.load(digest)  # another process may have finished meanwhile
                if found is not None:
                    self.hits_disk += 1
                    return found
                nbytes = self.disk.entry_bytes(shapes, self.dtype)
                with self.budget.reserve(digest, nbytes) as refused:
                    if refused is None:
                        self._miss(key)
                        with self.disk.writer(digest, shapes, self.dtype, asdict(key)) as out:
                            fill(out)
                        # hand out the mapped copy: the first trial reads what later ones will
                        return self.disk.load(digest)
                why = f"it needs {size(nbytes)}, {size(refused.nbytes)} is left ({refused.limit})"
                return self._in_memory(key, digest, shapes, fill, why=why)
        except Timeout:
            log.warning(
                "feature cache lock %s held for over %.0f s; computing without the cache",
                digest,
                self.lock_timeout_s,
            )
            out = Features.empty(shapes, self.dtype)
            fill(out)
            return out

    def _in_memory(
        self, key: FeatureKey, digest: str, shapes: Shapes, fill: Fill, *, why: str
    ) -> Features | None:
        """The set computed and kept in this process's LRU, or None (skipped) if too big."""
        nbytes = Features.nbytes_of(shapes, self.dtype)
        if nbytes > self.memory.budget_bytes:
            reason = (
                f"not stored on disk ({why}) nor in memory (it exceeds the "
                f"{size(self.memory.budget_bytes)} memory budget)"
            )
            self.skipped[key.describe()] = reason
            log.warning(
                "feature cache skipped %s: %s; its trials run the frozen blocks every epoch "
                "(raise the cache budgets to store it)",
                key.describe(),
                reason,
            )
            return None
        if self.disk is not None:
            # a warning the first time in this process (a CLI user sees it once, though the
            # estimate and the search each have a cache), the later sets at INFO
            first = "memory only" not in _SAID
            _SAID.add("memory only")
            log.log(
                logging.WARNING if first else logging.INFO,
                "feature cache: %s is kept in memory only: %s; other processes compute it "
                "again (a larger disk budget, cache_disk_gb, or more free disk stores it)",
                key.describe(),
                why,
            )
        self._miss(key)
        out = Features.empty(shapes, self.dtype)
        fill(out)
        self.memory.put(digest, out)
        return out

    def _miss(self, key: FeatureKey) -> None:
        self.misses += 1
        log.info("feature cache miss: computing %s", key.describe())

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
    disk_bytes: int = DEFAULT_DISK_BYTES,
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
    return FeatureCache(
        Path(directory), memory_bytes=memory_bytes, disk_bytes=disk_bytes, fp16=fp16
    )
