"""Datasets stored as numpy ``.npz`` archives of image and label arrays."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch

from autotransfer.data._dataset import TransferDataset
from autotransfer.data._errors import DatasetError
from autotransfer.data._sources import TensorImages
from autotransfer.data._split import stratified_split

_SPLIT_KEYS = ("x_train", "y_train", "x_val", "y_val")
TEST_KEYS = ("x_test", "y_test")
MAX_CLASSES = 100_000  # far above any image classification set; labels above it are an error
_LAYOUT_HINT = "[N, H, W] (grayscale), [N, H, W, C] or [N, C, H, W] with C = 1 or 3"


def load_npz(path: Path, *, val_fraction: float, seed: int) -> TransferDataset:
    """Load ``x_train, y_train, x_val, y_val`` (or ``x, y``, split here) and ``class_names``.

    The archive is read with ``allow_pickle=False``: a data file never runs code. Images are
    uint8, or floats in [0, 1] (scaled to 0..255); labels are integers 0..K-1 where K is
    ``len(class_names)`` when given, else the largest label + 1.
    """
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as exc:
        raise DatasetError(
            f"cannot read {path} as a .npz archive: {exc}; save it with "
            "np.savez(path, x_train=..., y_train=..., x_val=..., y_val=...)."
        ) from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DatasetError(
            f"{path} holds a single array, not a .npz archive; save it with np.savez(path, "
            "x_train=..., y_train=..., x_val=..., y_val=...) or np.savez(path, x=..., y=...)."
        )
    with archive:
        keys = set(archive.files)
        # x_test / y_test are the untouched test split: read only by ``load_npz_test``
        arrays = {key: _array(archive, key, path) for key in keys - set(TEST_KEYS)}
    if set(_SPLIT_KEYS) <= keys:
        x_train, y_train = arrays["x_train"], arrays["y_train"]
        x_val, y_val = arrays["x_val"], arrays["y_val"]
        train = TensorImages(_images("x_train", x_train), _labels("y_train", y_train, x_train))
        val = TensorImages(_images("x_val", x_val), _labels("y_val", y_val, x_val))
        given_split = True
    elif {"x", "y"} <= keys:
        images = _images("x", arrays["x"])
        train = val = TensorImages(images, _labels("y", arrays["y"], arrays["x"]))
        given_split = False
    else:
        raise DatasetError(
            f"{path} has arrays {sorted(keys)}; expected x_train, y_train, x_val, y_val "
            "(a given split) or x, y (split here by val_fraction)."
        )
    all_labels = torch.cat([train.labels, val.labels]).numpy()
    class_names = _class_names(arrays.get("class_names"), all_labels, train.labels.numpy(), path)
    if not given_split:
        train_idx, val_idx = stratified_split(train.labels.numpy(), val_fraction, seed, class_names)
        train, val = train.subset(train_idx), val.subset(val_idx)
    channels = max(train.channels, val.channels)
    return TransferDataset(
        name=path.stem,
        train=train.with_channels(channels),
        val=val.with_channels(channels),
        class_names=class_names,
    )


def npz_footprint(path: Path) -> int:
    """Bytes the archive's arrays take once loaded, read from their headers alone (nothing is
    decompressed): what a compressed archive of zeros would expand to."""
    total = 0
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                if not member.filename.endswith(".npy"):
                    continue
                with archive.open(member) as f:
                    version = np.lib.format.read_magic(f)
                    read = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read(f, max_header_size=10_000)
                total += int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(
            f"cannot read {path} as a .npz archive: {exc}; save it with "
            "np.savez(path, x_train=..., y_train=..., x_val=..., y_val=...)."
        ) from exc
    return total


def _array(archive: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    try:
        return np.asarray(archive[key])
    except ValueError as exc:  # object arrays refuse to load without pickle
        raise DatasetError(
            f"{path}: array {key!r} cannot be loaded without unpickling ({exc}); store plain "
            "numeric arrays, and class names as np.array(names, dtype=str)."
        ) from exc


def _images(key: str, x: np.ndarray) -> torch.Tensor:
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        if x.shape[-1] in (1, 3):
            x = x.transpose(0, 3, 1, 2)
        elif x.shape[1] not in (1, 3):
            channels = min(x.shape[1], x.shape[-1])
            raise DatasetError(
                f"{key} has {channels} channels (shape {x.shape}); images must have 1 "
                "(grayscale) or 3 (RGB) channels: drop the alpha channel or convert to RGB."
            )
    else:
        raise DatasetError(f"{key} has shape {x.shape}; images must be {_LAYOUT_HINT}.")
    if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
        raise DatasetError(f"{key} has shape {x.shape}: no images or an empty side.")
    return torch.from_numpy(_to_uint8(key, x))


def _to_uint8(key: str, x: np.ndarray) -> np.ndarray:
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if x.dtype.kind == "f":
        if not np.isfinite(x).all():
            raise DatasetError(f"{key} contains NaN or infinite values; fix or drop those images.")
        low, high = float(x.min()), float(x.max())
        if low < 0.0 or high > 1.0:
            raise DatasetError(
                f"{key} is {x.dtype} with values in [{low:g}, {high:g}]; float images must "
                "be in [0, 1] (divide 0..255 data by 255) or be stored as uint8."
            )
        return np.round(x * 255.0).astype(np.uint8)
    if x.dtype.kind in "iu":
        low, high = int(x.min()), int(x.max())
        if low < 0 or high > 255:
            raise DatasetError(
                f"{key} is {x.dtype} with values in [{low}, {high}]; integer images must be "
                "in 0..255 (rescale 16-bit data, e.g. x // 257) or be stored as uint8."
            )
        return x.astype(np.uint8)
    raise DatasetError(f"{key} has dtype {x.dtype}; store images as uint8 or floats in [0, 1].")


def _labels(key: str, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != len(x):
        raise DatasetError(
            f"{key} has shape {y.shape} but there are {len(x)} images; store one integer "
            "label per image as a 1-D array (not one-hot)."
        )
    if y.dtype.kind == "f":
        fractional = y[~np.isfinite(y) | (y != np.round(y))]
        if fractional.size:
            raise DatasetError(
                f"{key} contains the non-integer label {fractional[0].item()!r}; labels must be "
                "integer class indices 0..K-1."
            )
    elif y.dtype.kind not in "iu":
        raise DatasetError(
            f"{key} has dtype {y.dtype}; labels must be integer class indices 0..K-1 "
            "(map names to indices and store class_names separately)."
        )
    labels = y.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise DatasetError(
            f"{key} contains the label {int(labels.min())}; labels must be class indices 0..K-1."
        )
    return labels


def _check_label_range(labels: np.ndarray, num_train: int, path: Path) -> None:
    """Refuse labels whose largest value leaves classes without a training image before
    anything is sized by it (``{0, 2**40}`` would otherwise ask for 2**40 class names)."""
    largest = int(labels.max())
    if largest < min(num_train, MAX_CLASSES):
        return
    distinct = len(np.unique(labels))
    raise DatasetError(
        f"{path}: labels must be 0..K-1; found {distinct} distinct values up to {largest}, "
        f"but there are {num_train} training images (and at most {MAX_CLASSES:,} classes); "
        "renumber the labels 0..K-1 without gaps, or store class_names."
    )


def _class_names(
    names: np.ndarray | None, labels: np.ndarray, train_labels: np.ndarray, path: Path
) -> tuple[str, ...]:
    if names is not None:
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise DatasetError(
                f"{path}: class_names has dtype {names.dtype} and shape {names.shape}; store "
                "it as a 1-D string array, np.array(names, dtype=str)."
            )
        class_names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
        if labels.max() >= len(class_names):
            raise DatasetError(
                f"{path}: label {int(labels.max())} is out of range for {len(class_names)} "
                f"class_names; labels must be 0..{len(class_names) - 1}."
            )
    else:
        _check_label_range(labels, len(train_labels), path)
        class_names = tuple(str(k) for k in range(int(labels.max()) + 1))
    missing = sorted(set(range(len(class_names))) - set(np.unique(train_labels).tolist()))
    if missing:
        raise DatasetError(
            f"{path}: labels must be 0..K-1 with every class in the training split, but with "
            f"the largest label {int(labels.max())} (K = {len(class_names)}) classes "
            f"{missing[:10]} have no training images; renumber the labels without gaps."
        )
    return class_names


def load_npz_test(path: Path, num_classes: int, channels: int) -> TensorImages | None:
    """The archive's ``x_test, y_test`` (None without them), with the dataset's channels."""
    with np.load(path, allow_pickle=False) as archive:
        present = [key for key in TEST_KEYS if key in archive.files]
        if not present:
            return None
        if len(present) == 1:
            raise DatasetError(
                f"{path} has {present[0]} but not its pair; store both x_test and y_test."
            )
        x, y = (_array(archive, key, path) for key in TEST_KEYS)
    test = TensorImages(_images("x_test", x), _labels("y_test", y, x))
    if int(test.labels.max()) >= num_classes or int(test.labels.min()) < 0:
        raise DatasetError(
            f"{path}: y_test has labels outside 0..{num_classes - 1}, the training classes; "
            "give the test split the training split's classes."
        )
    return test.with_channels(channels)
