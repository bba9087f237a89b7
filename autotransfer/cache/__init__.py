"""Frozen-prefix feature cache shared across epochs, trials and worker processes.

With freeze depth ``k`` the blocks below the top ``k`` are frozen and in eval mode, so
their output is a pure function of the un-augmented input. :class:`FeatureCache` stores it
once per :class:`FeatureKey` (backbone, digest of the prefix weights, cut point, dataset
fingerprint, preprocessing, compute precision) and the trainer then runs only the
trainable top of the network. Trials with random augmentation bypass the cache. The
disk store and the memory LRU each keep to a byte budget (``disk_bytes``, ``memory_bytes``).
"""

from __future__ import annotations

from autotransfer.cache._budget import DEFAULT_DISK_BYTES, DiskBudget, GiB
from autotransfer.cache._cache import (
    DEFAULT_MEMORY_BYTES,
    FeatureCache,
    Fill,
    default_cache_dir,
    make_cache,
)
from autotransfer.cache._disk import DiskStore
from autotransfer.cache._key import FeatureKey, prefix_digest
from autotransfer.cache._memory import Features, MemoryLRU, Shapes

__all__ = [
    "DEFAULT_DISK_BYTES",
    "DEFAULT_MEMORY_BYTES",
    "DiskBudget",
    "DiskStore",
    "FeatureCache",
    "FeatureKey",
    "Features",
    "Fill",
    "GiB",
    "MemoryLRU",
    "Shapes",
    "default_cache_dir",
    "make_cache",
    "prefix_digest",
]
