"""Datasets: sources, profiling, train/validation split, and preprocessing for backbones.

``load_dataset`` turns a reference (``"digits"``, ``"fashion-mnist"``, ``"synthetic:..."``,
an image folder, a ``.npz`` file) into a ``TransferDataset`` of two ``ImageSource`` splits
holding uint8 images at native resolution. ``TransferDataset.profile()`` measures it for
the recommender; ``make_loaders`` yields uint8 batches at the backbone's input size, and
``BatchTransform`` turns those into normalised float input on the training device.
"""

from __future__ import annotations

from autotransfer.data._dataset import TransferDataset
from autotransfer.data._errors import DatasetError
from autotransfer.data._fashion_mnist import FASHION_MNIST_CLASSES
from autotransfer.data._idx import parse_idx, read_idx
from autotransfer.data._images import IMAGE_EXTENSIONS
from autotransfer.data._load import load_dataset
from autotransfer.data._loaders import balanced_sampler, make_loaders
from autotransfer.data._npz import npz_footprint
from autotransfer.data._profile import DatasetProfile
from autotransfer.data._ref import DatasetRef
from autotransfer.data._sources import FileImages, ImageSource, TensorImages
from autotransfer.data._split import stratified_split, stratified_subset
from autotransfer.data._synthetic import SyntheticSpec, generate_synthetic
from autotransfer.data._test_split import MAX_TEST_FRACTION, check_test_fraction, load_test_split
from autotransfer.data._transforms import BatchTransform, resize_uint8

__all__ = [
    "FASHION_MNIST_CLASSES",
    "IMAGE_EXTENSIONS",
    "MAX_TEST_FRACTION",
    "BatchTransform",
    "DatasetError",
    "DatasetProfile",
    "DatasetRef",
    "FileImages",
    "ImageSource",
    "SyntheticSpec",
    "TensorImages",
    "TransferDataset",
    "balanced_sampler",
    "check_test_fraction",
    "generate_synthetic",
    "load_dataset",
    "load_test_split",
    "make_loaders",
    "npz_footprint",
    "parse_idx",
    "read_idx",
    "resize_uint8",
    "stratified_split",
    "stratified_subset",
]
