"""The test split: images the search never sees, scored once by the model it chose.

The validation split chooses the configuration (its best epoch, its trial), so its score is
optimistic; a figure a user can quote comes from images nothing was chosen on. A dataset
gets one in one of three ways, read only after the search has ended:

- an image folder with ``test/<class>/*`` beside ``train/`` and ``val/`` (its class folders
  must be ``train/``'s; the search checks their names and opens none of its files);
- a ``.npz`` archive with ``x_test, y_test`` beside its other arrays;
- ``test_fraction``: a stratified share of the training split held out before anything is
  trained (the same share, drawn with the split seed, at every load).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

from autotransfer.data._dataset import TransferDataset
from autotransfer.data._errors import DatasetError
from autotransfer.data._folder import load_test_folder
from autotransfer.data._npz import load_npz_test
from autotransfer.data._ref import DatasetRef
from autotransfer.data._sources import ImageSource
from autotransfer.data._split import stratified_split

MAX_TEST_FRACTION = 0.5


def check_test_fraction(test_fraction: float | None) -> None:
    if test_fraction is not None and not 0.0 < test_fraction <= MAX_TEST_FRACTION:
        raise DatasetError(
            f"test_fraction must be in (0, {MAX_TEST_FRACTION}], got {test_fraction}; 0.2 holds "
            "out a fifth of each class of the training split as the untouched test split."
        )


def hold_out(dataset: TransferDataset, test_fraction: float, seed: int) -> TransferDataset:
    """The dataset without a stratified ``test_fraction`` of its training split, which
    becomes its ``test``."""
    check_test_fraction(test_fraction)
    keep, test = stratified_split(
        dataset.train.labels.numpy(), test_fraction, seed, dataset.class_names
    )
    train = dataset.train
    return dataclasses.replace(dataset, train=train.subset(keep), test=train.subset(test))


def load_test_split(
    ref: str | Path | DatasetRef,
    dataset: TransferDataset,
    *,
    test_fraction: float | None,
    on_corrupt: Literal["skip", "error"] = "skip",
) -> ImageSource | None:
    """The test split of ``dataset`` (as ``load_dataset`` returned it for ``ref``), or None
    when it has none: the held-out share of ``test_fraction``, or the ``test/`` folder or
    ``x_test, y_test`` arrays, read now. ``test_fraction`` must be what ``load_dataset`` was
    given."""
    if test_fraction is not None and dataset.test is None:
        raise DatasetError(
            f"test_fraction={test_fraction} was asked for, but the dataset holds no "
            "held-out split; load it with load_dataset(..., test_fraction=...)."
        )
    parsed = DatasetRef.parse(ref)
    given: ImageSource | None = None
    if parsed.path is not None and parsed.kind == "npz":
        given = load_npz_test(parsed.path.expanduser(), len(dataset.class_names), dataset.channels)
    elif parsed.path is not None and parsed.path.expanduser().is_dir():
        given = load_test_folder(
            parsed.path.expanduser(), dataset.class_names, dataset.channels, on_corrupt
        )
    if given is not None and test_fraction is not None:
        raise DatasetError(
            f"{parsed.text} has its own test split, and test_fraction={test_fraction} asks for "
            "another; leave test_fraction out, or remove the dataset's test split."
        )
    return given if given is not None else dataset.test


__all__ = ["MAX_TEST_FRACTION", "check_test_fraction", "hold_out", "load_test_split"]
