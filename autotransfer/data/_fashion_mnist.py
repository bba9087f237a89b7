"""Fashion-MNIST from its idx files (28×28 grayscale, 10 classes, 60,000 + 10,000 images)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from autotransfer.data._dataset import TransferDataset
from autotransfer.data._errors import DatasetError
from autotransfer.data._idx import read_idx
from autotransfer.data._sources import TensorImages

ENV_VAR = "AUTOTRANSFER_FASHION_MNIST"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "val_images": "t10k-images-idx3-ubyte",
    "val_labels": "t10k-labels-idx1-ubyte",
}


def candidate_dirs(explicit: str | Path | None = None) -> list[Path]:
    """Folders searched for the idx files, in order.

    An explicit folder is the only candidate. Otherwise: ``$AUTOTRANSFER_FASHION_MNIST``,
    the Debian package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``),
    then ``./data``. Each folder is tried as given and in torchvision's layout below it
    (``FashionMNIST/raw``).
    """
    if explicit is not None:
        roots = [Path(explicit).expanduser()]
    else:
        roots = [Path(os.environ[ENV_VAR]).expanduser()] if os.environ.get(ENV_VAR) else []
        roots += [DEBIAN_DIR, Path("data")]
    return [d for root in roots for d in (root, root / "FashionMNIST" / "raw")]


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def find_fashion_mnist(explicit: str | Path | None = None) -> dict[str, Path]:
    """The four idx files from the first candidate folder that holds all of them."""
    searched = candidate_dirs(explicit)
    for folder in searched:
        found = {key: _find(folder, stem) for key, stem in _FILES.items()}
        if all(path is not None for path in found.values()):
            return {key: path for key, path in found.items() if path is not None}
    listed = ", ".join(str(d) for d in searched)
    raise DatasetError(
        f"Fashion-MNIST idx files ({', '.join(_FILES.values())}, optionally .gz) not found; "
        f"looked in: {listed}. Install them with `apt-get install dataset-fashion-mnist`, "
        f"or set {ENV_VAR} (or use 'fashion-mnist:/path/to/dir') to a folder that holds them."
    )


def _split(images_path: Path, labels_path: Path) -> TensorImages:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DatasetError(
            f"{images_path} holds {images.dtype} data of shape {images.shape}; Fashion-MNIST "
            "images are uint8 [N, 28, 28]. Check that images and labels files are not swapped."
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise DatasetError(
            f"{labels_path} holds shape {labels.shape} but {images_path} has {len(images)} "
            "images; the labels file must be 1-D with one label per image."
        )
    if labels.size and int(labels.max()) >= len(FASHION_MNIST_CLASSES):
        raise DatasetError(
            f"{labels_path} has label {int(labels.max())}; Fashion-MNIST labels are 0..9."
        )
    return TensorImages(torch.from_numpy(images).unsqueeze(1), labels.astype(np.int64))


def load_fashion_mnist(explicit: str | Path | None = None) -> TransferDataset:
    """The full dataset: the training file as train, the test file as validation."""
    files = find_fashion_mnist(explicit)
    return TransferDataset(
        name="fashion-mnist",
        train=_split(files["train_images"], files["train_labels"]),
        val=_split(files["val_images"], files["val_labels"]),
        class_names=FASHION_MNIST_CLASSES,
    )
