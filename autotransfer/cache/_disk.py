"""Feature sets on disk as memory-mapped ``.npy`` files, shared by the processes of a machine.

Layout: ``<directory>/<digest>/train.npy``, ``val.npy`` and ``meta.json``. Every file is
written to a temporary name in the same folder and moved into place with ``os.replace``
(atomic on POSIX and Windows), and ``meta.json`` goes last: an entry without it does not
exist for readers, so nobody ever maps a half-written array. ``<digest>.lock`` (a
``filelock`` lock) lets one process compute an entry while the others wait for it.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
from filelock import FileLock

from autotransfer.cache._memory import Features

_SPLITS = ("train", "val")
_META = "meta.json"


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
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

    def save(self, digest: str, features: Features, description: dict[str, Any]) -> None:
        folder = self.entry(digest)
        folder.mkdir(exist_ok=True)
        meta: dict[str, Any] = {"key": description}
        for split in _SPLITS:
            array = getattr(features, split).contiguous().numpy()
            _atomic_write(folder / f"{split}.npy", lambda h, a=array: np.save(h, a))
            meta[split] = {"shape": list(array.shape), "dtype": str(array.dtype)}
        text = json.dumps(meta, indent=1).encode()
        _atomic_write(folder / _META, lambda h: h.write(text))

    def digests(self) -> list[str]:
        return sorted(p.parent.name for p in self.directory.glob(f"*/{_META}"))

    def nbytes(self) -> int:
        return sum(f.stat().st_size for f in self.directory.glob("*/*.npy"))

    def clear(self) -> None:
        """Delete every entry (lock files stay: another process may hold one)."""
        for folder in self.directory.iterdir():
            if folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
