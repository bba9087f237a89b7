"""DataLoaders that yield uint8 batches resized to the backbone's input size."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from autotransfer.data._dataset import TransferDataset
from autotransfer.data._errors import DatasetError
from autotransfer.data._sources import FileImages, ImageSource, TensorImages
from autotransfer.data._transforms import resize_uint8

# Above this many bytes a resized tensor split is not materialised; batches are resized
# as they are drawn instead (Fashion-MNIST at 224 px would otherwise take 3 GiB).
_MAX_PRERESIZED_BYTES = 2 << 30

Batch = tuple[Tensor, Tensor]


class _TensorBatches(Dataset[Batch]):
    """A split held in memory, indexed a whole batch at a time (``__getitems__``): a tensor
    split resized up front when that fits, or a file split decoded at ``size`` when the first
    batch is drawn (``FileImages.resized``: once per image, however many epochs follow)."""

    def __init__(self, source: TensorImages | FileImages, size: int) -> None:
        self._files = source if isinstance(source, FileImages) else None
        self._eager = True
        self._images: Tensor | None = None
        if isinstance(source, TensorImages):
            n, channels = len(source), source.channels
            self._eager = n * channels * size * size <= _MAX_PRERESIZED_BYTES
            self._images = source.resized(size) if self._eager else source.images
        self._labels = source.labels
        self._size = size

    def _pixels(self) -> Tensor:
        if self._images is None:
            assert self._files is not None
            decoded = self._files.resized(self._size)
            assert decoded is not None, "_loader checked that the split fits decoded"
            self._images = decoded
        return self._images

    def __len__(self) -> int:
        return int(self._labels.shape[0])

    def __getitem__(self, index: int) -> Batch:
        images, labels = self.__getitems__([index])
        return images[0], labels[0]

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        index = torch.as_tensor(indices, dtype=torch.int64)
        images = self._pixels()[index]
        if not self._eager:
            images = resize_uint8(images, self._size)
        return images, self._labels[index]


def _already_batched(batch: Any) -> Any:
    """``collate_fn`` for ``_TensorBatches``, whose ``__getitems__`` returns a whole batch."""
    return batch


class _ResizedFiles(Dataset[tuple[Tensor, int]]):
    """Decodes and resizes one file per item; runs in DataLoader workers when there are any."""

    def __init__(self, source: ImageSource, size: int) -> None:
        self._source = source
        self._size = size

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        image, label = self._source[index]
        return resize_uint8(image, self._size), label


def balanced_sampler(labels: torch.Tensor, generator: torch.Generator) -> WeightedRandomSampler:
    """Draws an epoch's worth of training rows with replacement, each class equally often
    in expectation (a row's weight is 1 / its class's count): a class of 10 images is seen
    as often as one of 500, each of its images about 50 times more often.

    >>> labels = torch.tensor([0] * 90 + [1] * 10)
    >>> drawn = torch.tensor(list(balanced_sampler(labels, torch.Generator().manual_seed(0))))
    >>> len(drawn), 35 <= int((labels[drawn] == 1).sum()) <= 65
    (100, True)
    """
    counts = torch.bincount(labels.long())
    weights = (1.0 / counts[labels.long()].double()).tolist()
    return WeightedRandomSampler(weights, len(labels), replacement=True, generator=generator)


def _loader(
    source: ImageSource,
    *,
    size: int,
    batch_size: int,
    shuffle: bool,
    generator: torch.Generator | None,
    num_workers: int,
    pin_memory: bool,
    drop_last: bool,
    sampler: WeightedRandomSampler | None = None,
) -> DataLoader:
    shuffle = shuffle and sampler is None
    in_memory = isinstance(source, TensorImages) or (
        isinstance(source, FileImages) and source.fits_decoded(size)
    )
    if in_memory:
        assert isinstance(source, TensorImages | FileImages)
        # In memory, slicing a batch is cheaper than shipping it from a worker process.
        return DataLoader(
            _TensorBatches(source, size),
            batch_size=batch_size,
            shuffle=shuffle,
            sampler=sampler,
            generator=generator,
            collate_fn=_already_batched,
            pin_memory=pin_memory,
            drop_last=drop_last,
        )
    return DataLoader(
        _ResizedFiles(source, size),
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        generator=generator,
        num_workers=num_workers,
        pin_memory=pin_memory,
        drop_last=drop_last,
    )


def make_loaders(
    ds: TransferDataset,
    *,
    input_size: int,
    batch_size: int,
    seed: int,
    num_workers: int = 0,
    pin_memory: bool = False,
    drop_last: bool = False,
    balanced: bool = False,
) -> tuple[DataLoader, DataLoader]:
    """Train and validation loaders yielding ``(uint8 [B, C, S, S], int64 [B])``.

    ``S`` is ``input_size`` (bilinear, antialiased resize) and ``C`` the dataset's native
    channel count. The train loader shuffles with a generator seeded by ``seed``, so the
    same seed gives the same batch order epoch by epoch; ``drop_last`` applies to it only.
    With ``balanced`` the train loader draws rows through :func:`balanced_sampler` (seeded
    the same way) instead of shuffling. The validation loader keeps the split's order.
    Tensor splits are resized once up front and ignore ``num_workers``; file splits are
    decoded and resized once per image and kept in memory (``FileImages.resized``), or, when
    that would take over ``MAX_DECODED_BYTES``, decoded per item each epoch, in
    ``num_workers`` processes when above 0.
    """
    if input_size < 1 or batch_size < 1 or num_workers < 0:
        raise DatasetError(
            f"make_loaders needs input_size >= 1, batch_size >= 1 and num_workers >= 0, got "
            f"{input_size=}, {batch_size=}, {num_workers=}."
        )
    generator = torch.Generator().manual_seed(seed)
    train = _loader(
        ds.train,
        size=input_size,
        batch_size=batch_size,
        shuffle=True,
        generator=generator,
        num_workers=num_workers,
        pin_memory=pin_memory,
        drop_last=drop_last,
        sampler=balanced_sampler(ds.train.labels, generator) if balanced else None,
    )
    val = _loader(
        ds.val,
        size=input_size,
        batch_size=batch_size,
        shuffle=False,
        generator=None,
        num_workers=num_workers,
        pin_memory=pin_memory,
        drop_last=False,
    )
    return train, val
