"""Stratified train/validation splits and stratified subsets, both seeded."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import train_test_split

from autotransfer.data._errors import DatasetError


def check_val_fraction(val_fraction: float) -> None:
    if not 0.0 < val_fraction < 1.0:
        raise DatasetError(
            f"val_fraction must be strictly between 0 and 1, got {val_fraction}; "
            "0.2 holds out a fifth of each class for validation."
        )


def stratified_split(
    labels: np.ndarray, val_fraction: float, seed: int, class_names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted train and validation indices with every class present in both.

    The split itself is scikit-learn's stratified ``train_test_split`` (``ceil`` of the
    fraction goes to validation, proportional per class), so results match code that calls
    it directly. If rounding leaves a class out of one side, one sample of that class moves
    across, because a class missing from training or validation breaks the metrics.
    """
    check_val_fraction(val_fraction)
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=len(class_names))
    too_few = [(class_names[k], int(n)) for k, n in enumerate(counts) if n < 2]
    if too_few:
        listed = ", ".join(f"{name!r} ({n})" for name, n in too_few)
        raise DatasetError(
            f"classes with fewer than 2 images cannot be split into train and validation: "
            f"{listed}; add images to them or remove them."
        )
    n, num_classes = len(labels), len(class_names)
    n_val = min(max(math.ceil(val_fraction * n), num_classes), n - num_classes)
    _, val_idx = train_test_split(np.arange(n), test_size=n_val, stratify=labels, random_state=seed)
    in_val = np.zeros(n, dtype=bool)
    in_val[val_idx] = True
    for k in range(num_classes):
        members = np.flatnonzero(labels == k)
        if in_val[members].all() or not in_val[members].any():
            # Both sides hold at least one of the class's >= 2 members after the move.
            in_val[members[0]] = not in_val[members[0]]
    return np.flatnonzero(~in_val), np.flatnonzero(in_val)


def stratified_subset(
    labels: np.ndarray, size: int | None, seed: int, *, what: str = "subset"
) -> np.ndarray:
    """Sorted indices of ``size`` samples drawn per class in proportion, at least one each.

    Quotas are proportional with the remainder going to the largest fractional parts
    (ties to the lower class index), so a balanced 10-class set subsampled to 1,000 gives
    exactly 100 per class. ``None`` or a size at least the set's keeps everything.
    """
    labels = np.asarray(labels, dtype=np.int64)
    present = np.unique(labels)
    if size is None or size >= len(labels):
        return np.arange(len(labels))
    if size < len(present):
        raise DatasetError(
            f"{what}={size} is smaller than the {len(present)} classes present; "
            f"use at least {len(present)} so every class keeps one image."
        )
    counts = np.array([np.sum(labels == k) for k in present])
    exact = counts * (size / len(labels))
    quota = np.maximum(np.floor(exact).astype(np.int64), 1)
    while quota.sum() > size:
        # The minimum of one per class overshot: take back from a class that keeps >= 1.
        surplus = np.where(quota > 1, quota - exact, -np.inf)
        quota[np.argmax(surplus)] -= 1
    order = np.argsort(-(exact - quota), kind="stable")
    for k in order[: size - int(quota.sum())]:
        quota[k] += 1
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero(labels == k), size=int(q), replace=False)
        for k, q in zip(present, quota, strict=True)
    ]
    return np.sort(np.concatenate(chosen))
