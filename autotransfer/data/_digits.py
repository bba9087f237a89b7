"""scikit-learn's handwritten digits (8×8 grayscale, 10 classes, 1,797 images)."""

from __future__ import annotations

import numpy as np
import torch

from autotransfer.data._dataset import TransferDataset
from autotransfer.data._sources import TensorImages
from autotransfer.data._split import stratified_split

DIGIT_CLASSES = tuple(str(d) for d in range(10))


def load_digits_dataset(*, val_fraction: float, seed: int) -> TransferDataset:
    """The digits shipped inside scikit-learn, split stratified by ``val_fraction``/``seed``.

    Pixel values 0..16 are scaled to 0..255. With the defaults (0.2, seed 0) the split is
    1,437 train / 360 validation images, the same as scikit-learn's
    ``train_test_split(..., test_size=0.2, stratify=y, random_state=0)``.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = np.asarray(bunch.images, dtype=np.float64)
    images = torch.from_numpy(np.round(pixels * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)
    labels = np.asarray(bunch.target, dtype=np.int64)
    train_idx, val_idx = stratified_split(labels, val_fraction, seed, DIGIT_CLASSES)
    source = TensorImages(images, labels)
    return TransferDataset(
        name="digits",
        train=source.subset(train_idx),
        val=source.subset(val_idx),
        class_names=DIGIT_CLASSES,
    )
