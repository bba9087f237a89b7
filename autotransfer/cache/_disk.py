"""Feature sets on disk as memory-mapped ``.npy`` files, shared by the processes of a machine.

Layout: ``<directory>/<digest>/train.npy``, ``val.npy`` and ``meta.json``. Arrays are
written in place of temporary files in the same folder (memory-mapped, so a set larger
than RAM streams to disk as it is computed), fsynced and moved into place with
``os.replace`` (atomic on POSIX and Windows), and ``meta.json`` goes last: an entry
without it does not exist for readers, so nobody ever maps a half-written array.
``<digest>.lock`` (a ``filelock`` lock) lets one process compute an entry while the others
wait for it; ``<digest>.reserved`` holds the bytes a process is writing, so that other
processes count them against the budget before they land (see ``_budget.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock

from autotransfer.cache._memory import Features, Shapes

_SPLITS = ("train", "val")
_META = "meta.json"
# what an entry takes beyond its arrays' bytes: two .npy headers and meta.json, with room
ENTRY_OVERHEAD = 8192


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def _fsync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = _tmp_name(path)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class DiskStore:
    """Feature sets under ``directory`` (see the module doc for the layout and its guarantees)."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory).expanduser()
        self.directory.mkdir(parents=True, exist_ok=True)

    def entry(self, digest: str) -> Path:
        return self.directory / digest

    @staticmethod
    def entry_bytes(shapes: Shapes, dtype: torch.dtype) -> int:
        """An upper bound of the bytes an entry of ``shapes`` takes on disk."""
        return Features.nbytes_of(shapes, dtype) + ENTRY_OVERHEAD

    def lock(self, digest: str, timeout_s: float) -> FileLock:
        return FileLock(str(self.directory / f"{digest}.lock"), timeout=timeout_s)

    def __contains__(self, digest: str) -> bool:
        return (self.entry(digest) / _META).is_file()

    def load(self, digest: str) -> Features | None:
        """The entry memory-mapped copy-on-write (pages shared, never written back), or None."""
        folder = self.entry(digest)
        try:
            meta = json.loads((folder / _META).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        arrays = {}
        for split in _SPLITS:
            try:
                array = np.load(folder / f"{split}.npy", mmap_mode="c")
            except (FileNotFoundError, ValueError, OSError):
                return None
            if list(array.shape) != meta[split]["shape"]:
                return None  # overwritten by another key's writer: never hand out a mismatch
            arrays[split] = torch.from_numpy(array)
        return Features(arrays["train"], arrays["val"])

    @contextlib.contextmanager
    def writer(
        self, digest: str, shapes: Shapes, dtype: torch.dtype, description: dict[str, Any]
    ) -> Iterator[Features]:
        """Zero-filled memory-mapped arrays of ``shapes`` for the caller to fill; on a clean
        exit they become the entry ``digest``, on an exception nothing is left behind."""
        folder = self.entry(digest)
        folder.mkdir(exist_ok=True)
        np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
        tmps = {split: _tmp_name(folder / f"{split}.npy") for split in _SPLITS}
        try:
            arrays = {
                split: np.lib.format.open_memmap(tmps[split], "w+", np_dtype, tuple(shape))
                for split, shape in zip(_SPLITS, shapes, strict=True)
            }
            yield Features(torch.from_numpy(arrays["train"]), torch.from_numpy(arrays["val"]))
            meta: dict[str, Any] = {"key": description}
            for split, array in arrays.items():
                array.flush()
                meta[split] = {"shape": list(array.shape), "dtype": str(array.dtype)}
            del arrays
            for split, tmp in tmps.items():
                _fsync(tmp)
                os.replace(tmp, folder / f"{split}.npy")
            _atomic_write(folder / _META, json.dumps(meta, indent=1).encode())
        finally:
            for tmp in tmps.values():
                tmp.unlink(missing_ok=True)

    def digests(self) -> list[str]:
        return sorted(p.parent.name for p in self.directory.glob(f"*/{_META}"))

    def nbytes(self) -> int:
        """Bytes of every file in the entry folders: complete entries, and arrays being
        written (or left by a killed writer) at their full preallocated size."""
        total = 0
        for folder in self.directory.iterdir():
            if folder.is_dir():
                for path in folder.iterdir():
                    with contextlib.suppress(FileNotFoundError):
                        total += path.stat().st_size
        return total

    def clear(self) -> None:
        """Delete every entry (lock files stay: another process may hold one)."""
        for folder in self.directory.iterdir():
            if folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
