"""The measured summary of a dataset that the recommender and the reports read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from autotransfer.data._sources import ImageSource


@dataclass(frozen=True)
class DatasetProfile:
    """Sizes, classes, resolution and channels of a loaded dataset.

    Resolutions are ``(height, width)`` at native size over the training split, taken per
    axis: ``min_resolution`` is the smallest height and the smallest width (which may come
    from different images), ``median_resolution`` the lower median of each. ``channels``
    is the native count after the dataset's own normalisation (a folder mixing grayscale
    and colour files counts as 3).
    """

    name: str
    num_train: int
    num_val: int
    num_classes: int
    class_names: tuple[str, ...]
    train_class_counts: dict[str, int]
    val_class_counts: dict[str, int]
    min_resolution: tuple[int, int]
    median_resolution: tuple[int, int]
    max_resolution: tuple[int, int]
    channels: int
    fingerprint: str
    skipped_files: int

    @property
    def samples_per_class_min(self) -> int:
        """The smallest number of training images of any class."""
        return min(self.train_class_counts.values())

    def to_dict(self) -> dict[str, object]:
        """The fields as JSON-ready values (tuples become lists)."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in asdict(self).items()
        }


def _class_counts(source: ImageSource, class_names: Sequence[str]) -> dict[str, int]:
    counts = np.bincount(source.labels.numpy(), minlength=len(class_names))
    return {name: int(n) for name, n in zip(class_names, counts, strict=True)}


def _lower_median(values: np.ndarray) -> int:
    ordered = np.sort(values)
    return int(ordered[(len(ordered) - 1) // 2])


def build_profile(
    *,
    name: str,
    train: ImageSource,
    val: ImageSource,
    class_names: tuple[str, ...],
    fingerprint: str,
    skipped_files: int,
) -> DatasetProfile:
    """Profile from labels and recorded sizes only; no image is decoded."""
    sizes = train.image_sizes()
    heights, widths = sizes[:, 0], sizes[:, 1]
    return DatasetProfile(
        name=name,
        num_train=len(train),
        num_val=len(val),
        num_classes=len(class_names),
        class_names=class_names,
        train_class_counts=_class_counts(train, class_names),
        val_class_counts=_class_counts(val, class_names),
        min_resolution=(int(heights.min()), int(widths.min())),
        median_resolution=(_lower_median(heights), _lower_median(widths)),
        max_resolution=(int(heights.max()), int(widths.max())),
        channels=train.channels,
        fingerprint=fingerprint,
        skipped_files=skipped_files,
    )
