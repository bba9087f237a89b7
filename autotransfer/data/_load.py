"""``load_dataset``: one entry point for every dataset reference."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from autotransfer.data._dataset import TransferDataset
from autotransfer.data._digits import load_digits_dataset
from autotransfer.data._errors import DatasetError
from autotransfer.data._fashion_mnist import load_fashion_mnist
from autotransfer.data._folder import load_image_folder
from autotransfer.data._npz import load_npz
from autotransfer.data._ref import VALID_REFS, DatasetRef
from autotransfer.data._split import check_val_fraction, stratified_subset
from autotransfer.data._synthetic import load_synthetic
from autotransfer.data._test_split import check_test_fraction, hold_out


def _check_options(
    val_fraction: float, max_train: int | None, max_val: int | None, on_corrupt: str
) -> None:
    check_val_fraction(val_fraction)
    for name, value in (("max_train", max_train), ("max_val", max_val)):
        if value is not None and (isinstance(value, bool) or value < 1):
            raise DatasetError(f"{name} must be a positive number of images or None, got {value}.")
    if on_corrupt not in ("skip", "error"):
        raise DatasetError(
            f"on_corrupt must be 'skip' (leave unreadable images out) or 'error', "
            f"got {on_corrupt!r}."
        )


def _resolve(
    ref: DatasetRef, val_fraction: float, seed: int, on_corrupt: Literal["skip", "error"]
) -> TransferDataset:
    if ref.kind == "digits":
        return load_digits_dataset(val_fraction=val_fraction, seed=seed)
    if ref.kind == "fashion-mnist":
        return load_fashion_mnist(ref.path.expanduser() if ref.path else None)
    if ref.synthetic is not None:
        return load_synthetic(ref.synthetic, val_fraction=val_fraction, seed=seed)
    assert ref.path is not None
    path = ref.path.expanduser()
    try:
        is_file = path.is_file()
    except OSError as exc:  # e.g. a name too long for the file system
        raise DatasetError(
            f"dataset {ref.text[:80]!r} is not a usable path: {exc.strerror}."
        ) from None
    if ref.kind == "npz":
        if not is_file:
            raise DatasetError(
                f"no such file: {path}; pass an existing .npz with x_train, y_train, x_val, "
                "y_val (or x, y) arrays."
            )
        return load_npz(path, val_fraction=val_fraction, seed=seed)
    if is_file:
        raise DatasetError(
            f"{path} is a file, not a dataset; pass an image folder, a .npz file, or one of: "
            f"{VALID_REFS}."
        )
    return load_image_folder(path, val_fraction=val_fraction, seed=seed, on_corrupt=on_corrupt)


def load_dataset(
    ref: str | Path | DatasetRef,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    max_train: int | None = None,
    max_val: int | None = None,
    on_corrupt: Literal["skip", "error"] = "skip",
    test_fraction: float | None = None,
) -> TransferDataset:
    """Load a dataset by reference and return its train and validation splits.

    ``ref`` is ``"digits"``; ``"fashion-mnist"`` (or ``"fashion-mnist:DIR"``);
    ``"synthetic"`` (or ``"synthetic:key=value,..."``, see ``SyntheticSpec``); a folder
    (``<class>/*`` or ``train/<class>/*`` + ``val/<class>/*``); or a ``.npz`` file.

    Sources without a given split are split stratified by ``val_fraction`` with ``seed``.
    ``max_train`` / ``max_val`` then keep a stratified subset of each split (drawn with
    ``seed``, at least one image per class), which changes the fingerprint.
    ``on_corrupt`` decides whether unreadable image files are skipped (with a warning,
    listed in ``skipped_files``) or raise. ``test_fraction`` first holds out a stratified
    share of the training split as ``test`` (``_test_split.py``; a ``test/`` folder or
    ``x_test`` arrays are read only by ``load_test_split``, after a search). Every bad input
    raises ``DatasetError``.
    """
    _check_options(val_fraction, max_train, max_val, on_corrupt)
    check_test_fraction(test_fraction)
    dataset = _resolve(DatasetRef.parse(ref), val_fraction, seed, on_corrupt)
    if test_fraction is not None:
        dataset = hold_out(dataset, test_fraction, seed)
    if max_train is None and max_val is None:
        return dataset
    train_idx = stratified_subset(dataset.train.labels.numpy(), max_train, seed, what="max_train")
    val_idx = stratified_subset(dataset.val.labels.numpy(), max_val, seed, what="max_val")
    train, val = dataset.train, dataset.val
    return TransferDataset(
        name=dataset.name,
        train=train if len(train_idx) == len(train) else train.subset(train_idx),
        val=val if len(val_idx) == len(val) else val.subset(val_idx),
        class_names=dataset.class_names,
        skipped_files=dataset.skipped_files,
        test=dataset.test,
    )
