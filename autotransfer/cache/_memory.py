"""An in-process LRU of feature sets bounded by their total size in bytes."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import Tensor

# (train rows × feature shape, val rows × feature shape) of one feature set
Shapes = tuple[tuple[int, ...], tuple[int, ...]]


@dataclass(frozen=True)
class Features:
    """The frozen prefix's output for a dataset: row ``i`` belongs to image ``i`` of the split."""

    train: Tensor
    val: Tensor

    @property
    def nbytes(self) -> int:
        return sum(t.element_size() * t.numel() for t in (self.train, self.val))

    @staticmethod
    def nbytes_of(shapes: Shapes, dtype: torch.dtype) -> int:
        size = torch.empty(0, dtype=dtype).element_size()
        return sum(size * math.prod(shape) for shape in shapes)

    @classmethod
    def empty(cls, shapes: Shapes, dtype: torch.dtype) -> Features:
        return cls(torch.empty(shapes[0], dtype=dtype), torch.empty(shapes[1], dtype=dtype))


class MemoryLRU:
    """Least-recently-used feature sets, evicted until their bytes fit ``budget_bytes``.

    A set larger than the whole budget is not kept (the caller still gets it). Memory-mapped
    sets count with their full size, though the OS shares their pages between processes.
    Thread-safe, so Ray actors running trials in threads can share one instance.

    >>> import torch
    >>> lru = MemoryLRU(budget_bytes=100)
    >>> lru.put("a", Features(torch.zeros(10), torch.zeros(5)))  # 60 bytes
    >>> lru.put("b", Features(torch.zeros(10), torch.zeros(5)))  # 120 > 100: "a" goes
    >>> lru.get("a") is None, lru.get("b") is not None, lru.nbytes
    (True, True, 60)
    """

    def __init__(self, budget_bytes: int) -> None:
        if budget_bytes < 0:
            raise ValueError(f"memory budget must be >= 0 bytes, but got {budget_bytes=}.")
        self.budget_bytes = budget_bytes
        self._items: OrderedDict[str, Features] = OrderedDict()
        self._lock = threading.Lock()
        self.evictions = 0

    @property
    def nbytes(self) -> int:
        return sum(f.nbytes for f in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def get(self, key: str) -> Features | None:
        with self._lock:
            features = self._items.get(key)
            if features is not None:
                self._items.move_to_end(key)
            return features

    def put(self, key: str, features: Features) -> None:
        with self._lock:
            self._items.pop(key, None)
            if features.nbytes > self.budget_bytes:
                return
            self._items[key] = features
            total = sum(f.nbytes for f in self._items.values())
            while total > self.budget_bytes:
                _, evicted = self._items.popitem(last=False)
                total -= evicted.nbytes
                self.evictions += 1

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
