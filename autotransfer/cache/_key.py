"""What identifies a cached feature set: everything the frozen prefix's output depends on."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np
import torch

from autotransfer.backbones import Steps

FORMAT_VERSION = 1
"""Bumped whenever the stored layout or the way features are computed changes."""


def prefix_digest(prefix: Steps) -> str:
    """sha256 of the prefix's step paths and every parameter and buffer it holds.

    Hashing the tensors themselves, not the weights' name, makes a local state-dict file,
    a re-downloaded checkpoint or a random init with another seed a different key.
    """
    hasher = hashlib.sha256(f"autotransfer-prefix-v{FORMAT_VERSION}\0".encode())
    hasher.update("\0".join(prefix.paths).encode() + b"\0")
    for name, tensor in prefix.named_tensors():
        data = tensor.detach().to("cpu").contiguous()
        hasher.update(f"{name}:{data.dtype}:{tuple(data.shape)}\0".encode())
        # bytes of the raw storage: numpy cannot view bfloat16, a uint8 view works for all
        hasher.update(np.ascontiguousarray(data.reshape(-1).view(torch.uint8).numpy()).data)
    return hasher.hexdigest()


@dataclass(frozen=True)
class FeatureKey:
    """The cache key of one frozen prefix applied to one dataset (train and validation).

    ``cut`` is the number of frozen blocks (``num_blocks - k``); ``weights_digest`` comes from
    :func:`prefix_digest`; ``dataset`` is :attr:`TransferDataset.fingerprint`; ``input_size``,
    ``mean`` and ``std`` are the preprocessing; ``compute`` says where and at which precision
    the features were computed (``cpu-fp32``, ``cuda-bf16`` …) and ``storage`` the stored dtype.
    Any change gives another :meth:`digest`, so a stale entry is never read.
    """

    backbone: str
    weights_digest: str
    cut: int
    dataset: str
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    compute: str
    storage: str = "float32"
    version: int = FORMAT_VERSION

    def digest(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:40]

    def describe(self) -> str:
        return (
            f"{self.backbone} cut {self.cut}, data {self.dataset[:12]}, {self.input_size}px, "
            f"{self.compute}, stored {self.storage}"
        )
