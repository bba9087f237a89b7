"""A loaded dataset: named train and validation sources plus class names."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from autotransfer.data._errors import DatasetError
from autotransfer.data._profile import DatasetProfile, build_profile
from autotransfer.data._sources import ImageSource


@dataclass(frozen=True)
class TransferDataset:
    """Train and validation splits of one classification dataset.

    Both splits share ``class_names`` (label ``k`` is ``class_names[k]``) and one channel
    count. ``skipped_files`` lists image files left out at load time because they could
    not be read. The dataset is immutable; ``fingerprint`` and ``profile()`` are computed
    once and cached.
    """

    name: str
    train: ImageSource
    val: ImageSource
    class_names: tuple[str, ...]
    skipped_files: tuple[Path, ...] = ()
    # a test split held out of the training data (``test_fraction``), never searched on; not
    # part of ``fingerprint`` or ``profile()`` (see ``_test_split.py``)
    test: ImageSource | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        object.__setattr__(self, "skipped_files", tuple(Path(p) for p in self.skipped_files))
        if len(self.class_names) < 2:
            raise DatasetError(
                f"dataset {self.name!r} has {len(self.class_names)} class(es) "
                f"{list(self.class_names)}; classification needs at least 2."
            )
        if len(set(self.class_names)) != len(self.class_names):
            raise DatasetError(
                f"dataset {self.name!r} repeats class names {list(self.class_names)}; "
                "give every class a distinct name."
            )
        for split, source in (("train", self.train), ("val", self.val)):
            if len(source) == 0:
                raise DatasetError(f"dataset {self.name!r} has an empty {split} split.")
            labels = source.labels
            low, high = int(labels.min()), int(labels.max())
            if low < 0 or high >= len(self.class_names):
                bad = low if low < 0 else high
                raise DatasetError(
                    f"dataset {self.name!r}: {split} label {bad} is outside 0.."
                    f"{len(self.class_names) - 1} for {len(self.class_names)} class names."
                )
        if self.train.channels != self.val.channels:
            raise DatasetError(
                f"dataset {self.name!r}: train has {self.train.channels} channel(s) but val has "
                f"{self.val.channels}; convert both splits to the same channel count."
            )

    @property
    def channels(self) -> int:
        return self.train.channels

    @cached_property
    def fingerprint(self) -> str:
        """sha256 hex digest of the name, class names and both splits' content.

        For tensors that is the image and label bytes; for files the relative paths,
        labels and file bytes. It is stable across runs and processes and changes when any
        pixel, label or split membership changes, so it can key cached features.
        """
        hasher = hashlib.sha256()
        hasher.update(f"autotransfer-dataset-v1\0{self.name}\0".encode())
        hasher.update("\0".join(self.class_names).encode() + b"\0")
        for split, source in (("train", self.train), ("val", self.val)):
            hasher.update(f"split:{split}\0".encode())
            source.update_digest(hasher)
        return hasher.hexdigest()

    @cached_property
    def _profile(self) -> DatasetProfile:
        return build_profile(
            name=self.name,
            train=self.train,
            val=self.val,
            class_names=self.class_names,
            fingerprint=self.fingerprint,
            skipped_files=len(self.skipped_files),
        )

    def profile(self) -> DatasetProfile:
        """Sizes, per-class counts, native resolution and channels (no image is decoded)."""
        return self._profile
