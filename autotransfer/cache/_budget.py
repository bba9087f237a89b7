"""How many bytes the disk store may still take: its own cap, and the disk's free space.

A process about to write an entry first *reserves* its size: under a store-wide lock it
counts what is stored, what other processes have reserved and not yet finished, and the
disk's free space less a reserve it never touches, and writes ``<digest>.reserved`` if the
entry fits. A reservation counts only while its writer holds the entry's lock, so one left
by a killed process is dropped by the next one that looks. Arrays being written count both
as reserved and as stored, which errs towards storing less, never towards filling the disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass

from filelock import FileLock, Timeout

from autotransfer.cache._disk import DiskStore

GiB = 2**30
DEFAULT_DISK_BYTES = 20 * GiB
# never leave less than this much of the disk free (the larger of the two)
MIN_FREE_BYTES = 1 * GiB
MIN_FREE_SHARE = 0.05
_SUFFIX = ".reserved"


def size(nbytes: float) -> str:
    """``nbytes`` for a message: ``3.4 MiB``, ``1.20 GiB``."""
    if abs(nbytes) >= GiB:
        return f"{nbytes / GiB:.2f} GiB"
    if abs(nbytes) >= 2**20:
        return f"{nbytes / 2**20:.1f} MiB"
    return f"{nbytes / 2**10:.0f} KiB"


@dataclass(frozen=True)
class Room:
    """Bytes an entry may still take, and the limit that sets it (for the message)."""

    nbytes: int
    limit: str


class DiskBudget:
    """The admission rule of one :class:`DiskStore` (see the module doc)."""

    def __init__(self, store: DiskStore, max_bytes: int = DEFAULT_DISK_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError(f"disk budget must be >= 0 bytes, but got {max_bytes=}.")
        self.store = store
        self.max_bytes = max_bytes
        self._lock = FileLock(str(store.directory / "budget.lock"), timeout=600)

    def _reserved(self, other_than: str) -> int:
        total = 0
        for path in self.store.directory.glob(f"*{_SUFFIX}"):
            digest = path.name.removesuffix(_SUFFIX)
            if digest == other_than:
                continue
            probe = self.store.lock(digest, timeout_s=0)
            try:
                probe.acquire()
            except Timeout:  # its writer is alive
                with contextlib.suppress(OSError, ValueError, KeyError):
                    total += int(json.loads(path.read_text())["bytes"])
                continue
            try:
                path.unlink(missing_ok=True)  # left by a writer that died
            finally:
                probe.release()
        return total

    def room(self, other_than: str = "") -> Room:
        """What a new entry may take now (call under the budget lock to act on it)."""
        reserved = self._reserved(other_than)
        by_budget = self.max_bytes - self.store.nbytes() - reserved
        disk = shutil.disk_usage(self.store.directory)
        keep = max(MIN_FREE_BYTES, int(MIN_FREE_SHARE * disk.total))
        by_disk = disk.free - keep - reserved
        if by_disk < by_budget:
            return Room(
                max(0, by_disk),
                f"the disk keeps {size(keep)} free and has {size(disk.free)} free",
            )
        return Room(max(0, by_budget), f"the disk budget is {size(self.max_bytes)}")

    @contextlib.contextmanager
    def reserve(self, digest: str, nbytes: int) -> Iterator[Room | None]:
        """Yields None with ``nbytes`` reserved for ``digest`` (the caller holds its entry
        lock), or the :class:`Room` there is when it does not fit (nothing reserved)."""
        marker = self.store.directory / f"{digest}{_SUFFIX}"
        with self._lock:
            room = self.room(other_than=digest)
            if nbytes > room.nbytes:
                refused: Room | None = room
            else:
                refused = None
                marker.write_text(json.dumps({"bytes": nbytes, "pid": os.getpid()}))
        if refused is not None:
            yield refused
            return
        try:
            yield None
        finally:
            marker.unlink(missing_ok=True)
