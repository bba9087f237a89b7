"""Image sources: the two ways a split's images are held (tensors in memory, files on disk)."""

from __future__ import annotations

import abc
import hashlib
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from autotransfer.data._errors import DatasetError
from autotransfer.data._images import ImageInfo, decode_image, read_header
from autotransfer.data._transforms import resize_uint8

_HASH_CHUNK = 1 << 20
# A file split is decoded and resized once and held in memory up to this many bytes per
# split (2 GiB: about 14,000 RGB images at 224 px); above it, files are decoded per epoch.
MAX_DECODED_BYTES = 2 << 30
# Each cached size of a large split can take gigabytes; two cover the common
# "profile at one size, train at another" pattern without holding every size ever asked for.
_MAX_CACHED_SIZES = 2

log = logging.getLogger(__name__)

Indices = Sequence[int] | np.ndarray | Tensor


class ImageSource(Dataset[tuple[Tensor, int]], abc.ABC):
    """One split's images and integer labels, at native resolution.

    Contract for implementations: ``source[i]`` returns ``(image, label)`` with ``image`` a
    uint8 tensor ``[channels, H, W]`` (``channels`` is 1 or 3 and the same for every
    sample; ``H, W`` may differ between samples) and ``label`` an ``int`` in ``0..K-1``;
    ``labels`` is the int64 tensor of all labels in order. Sources are immutable:
    ``subset`` returns a new source and never modifies this one.
    """

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def __getitem__(self, index: int) -> tuple[Tensor, int]: ...

    @property
    @abc.abstractmethod
    def labels(self) -> Tensor:
        """int64 ``[N]``."""

    @property
    @abc.abstractmethod
    def channels(self) -> int:
        """1 (grayscale) or 3 (RGB), the same for every sample."""

    @abc.abstractmethod
    def image_sizes(self) -> np.ndarray:
        """int64 ``[N, 2]`` native ``(height, width)`` per sample, without decoding pixels."""

    @abc.abstractmethod
    def subset(self, indices: Indices) -> ImageSource:
        """A new source holding the samples at ``indices``, in that order."""

    @abc.abstractmethod
    def update_digest(self, hasher: hashlib._Hash) -> None:
        """Feed everything that defines this source's content (pixels, labels) to ``hasher``."""


def _as_index_array(indices: Indices) -> np.ndarray:
    if isinstance(indices, Tensor):
        return indices.cpu().numpy().astype(np.int64)
    return np.asarray(indices, dtype=np.int64)


class TensorImages(ImageSource):
    """A split held in memory as one uint8 tensor ``[N, C, H, W]`` (``C`` in {1, 3})."""

    def __init__(self, images: Tensor, labels: Tensor | Sequence[int] | np.ndarray) -> None:
        if not isinstance(images, Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
            got = (
                f"{images.dtype} {tuple(images.shape)}"
                if isinstance(images, Tensor)
                else type(images).__name__
            )
            raise DatasetError(
                f"TensorImages needs a uint8 tensor [N, C, H, W], got {got}; "
                "convert with (x * 255).round().to(torch.uint8) and permute to channels-first."
            )
        if images.shape[1] not in (1, 3):
            raise DatasetError(
                f"TensorImages got {images.shape[1]} channels (shape {tuple(images.shape)}); "
                "images must have 1 (grayscale) or 3 (RGB) channels."
            )
        label_tensor = torch.as_tensor(np.asarray(labels), dtype=torch.int64).reshape(-1)
        if label_tensor.numel() != images.shape[0]:
            raise DatasetError(
                f"TensorImages got {images.shape[0]} images but {label_tensor.numel()} labels; "
                "pass exactly one label per image."
            )
        self._images = images.detach().cpu().contiguous()
        self._labels = label_tensor
        self._resized: dict[int, Tensor] = {}

    def __len__(self) -> int:
        return int(self._images.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self._images[index], int(self._labels[index])

    @property
    def images(self) -> Tensor:
        return self._images

    @property
    def labels(self) -> Tensor:
        return self._labels

    @property
    def channels(self) -> int:
        return int(self._images.shape[1])

    def image_sizes(self) -> np.ndarray:
        _, _, height, width = self._images.shape
        return np.tile(np.array([[height, width]], dtype=np.int64), (len(self), 1))

    def subset(self, indices: Indices) -> TensorImages:
        index = torch.from_numpy(_as_index_array(indices))
        return TensorImages(self._images[index], self._labels[index])

    def with_channels(self, channels: int) -> TensorImages:
        """This split with grayscale repeated to 3 channels (only 1 → 3 is supported)."""
        if channels == self.channels:
            return self
        if (self.channels, channels) != (1, 3):
            raise DatasetError(f"cannot convert {self.channels} channels to {channels}.")
        return TensorImages(self._images.expand(-1, 3, -1, -1), self._labels)

    def resized(self, size: int) -> Tensor:
        """All images resized to ``size × size`` once, cached on this object by size."""
        cached = self._resized.get(size)
        if cached is None:
            cached = resize_uint8(self._images, size)
            while len(self._resized) >= _MAX_CACHED_SIZES:
                self._resized.pop(next(iter(self._resized)))
            self._resized[size] = cached
        return cached

    def update_digest(self, hasher: hashlib._Hash) -> None:
        hasher.update(f"tensor:{tuple(self._images.shape)}\0".encode())
        hasher.update(self._images.numpy().data)
        hasher.update(self._labels.numpy().astype("<i8").data)


class FileImages(ImageSource):
    """A split of image files, decoded lazily with PIL in ``__getitem__``.

    ``channels`` is what every sample is converted to: 1 keeps grayscale files as one
    channel, 3 converts everything (grayscale included) to RGB; ``None`` reads the file
    headers and picks 1 if every file is grayscale, else 3. ``sizes`` are the native
    ``(height, width)`` read by the load-time check; without them the headers are read on
    first use. ``root`` makes the fingerprint independent of where the folder lives.
    """

    def __init__(
        self,
        items: Sequence[tuple[str | Path, int]],
        *,
        channels: int | None = None,
        sizes: Sequence[tuple[int, int]] | np.ndarray | None = None,
        root: str | Path | None = None,
    ) -> None:
        if channels not in (None, 1, 3):
            raise DatasetError(f"FileImages got channels={channels}; use 1, 3 or None.")
        self._paths = tuple(Path(path) for path, _ in items)
        self._labels = torch.tensor([int(label) for _, label in items], dtype=torch.int64)
        self._root = Path(root) if root is not None else None
        self._sizes: np.ndarray | None = None
        if sizes is not None:
            self._sizes = np.asarray(sizes, dtype=np.int64).reshape(-1, 2)
            if len(self._sizes) != len(self._paths):
                raise DatasetError(
                    f"FileImages got {len(self._paths)} files but {len(self._sizes)} sizes; "
                    "pass one (height, width) per file or none."
                )
        if channels is None:
            infos = self._read_headers()
            self._sizes = np.asarray([(i.height, i.width) for i in infos], np.int64).reshape(-1, 2)
            channels = 3 if any(i.channels == 3 for i in infos) else 1
        self._channels = channels
        self._decoded: tuple[int, Tensor] | None = None  # (size, uint8 [N, C, size, size])
        self._decode_lock = threading.Lock()
        self._too_big: set[int] = set()  # sizes fits_decoded has refused (and logged)
        self.decodes = 0  # files decoded so far (a read counter for tests and logs)

    def _read_headers(self) -> list[ImageInfo]:
        infos = []
        for path in self._paths:
            try:
                infos.append(read_header(path))
            except Exception as exc:  # PIL's decoders raise many unrelated exception types.
                raise DatasetError(
                    f"cannot read image {path}: {exc}; replace or delete the file."
                ) from exc
        return infos

    def __len__(self) -> int:
        return len(self._paths)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        path = self._paths[index]
        self.decodes += 1
        try:
            array = decode_image(path, self._channels)
        except Exception as exc:  # PIL's decoders raise many unrelated exception types.
            raise DatasetError(
                f"cannot decode image {path}: {exc}. It passed the load-time check, so it was "
                "changed or damaged since; replace or delete the file and load the dataset again."
            ) from exc
        return torch.from_numpy(array).permute(2, 0, 1).contiguous(), int(self._labels[index])

    def fits_decoded(self, size: int) -> bool:
        """Whether :meth:`resized` keeps this split (else it logs why it does not)."""
        nbytes = len(self) * self._channels * size * size
        if nbytes > MAX_DECODED_BYTES:
            if size in self._too_big:
                return False
            self._too_big.add(size)  # said once per split and size, not at every loader
            log.warning(
                "%d images at %d px take %.1f GiB decoded, over the %.0f GiB kept in memory: "
                "they are decoded again every epoch (a smaller input size or max_train avoids it)",
                len(self),
                size,
                nbytes / 2**30,
                MAX_DECODED_BYTES / 2**30,
            )
            return False
        return True

    def resized(self, size: int) -> Tensor | None:
        """Every file decoded and resized to ``size × size`` once, as uint8 ``[N, C, S, S]``,
        kept on this object for the latest size; None when that exceeds ``MAX_DECODED_BYTES``
        (see :meth:`fits_decoded`), in which case the loaders decode file by file each epoch."""
        if not self.fits_decoded(size):
            return None
        with self._decode_lock:
            if self._decoded is None or self._decoded[0] != size:
                out = torch.empty((len(self), self._channels, size, size), dtype=torch.uint8)
                for i in range(len(self)):
                    out[i] = resize_uint8(self[i][0], size)
                self._decoded = (size, out)
            return self._decoded[1]

    @property
    def paths(self) -> tuple[Path, ...]:
        return self._paths

    @property
    def root(self) -> Path | None:
        return self._root

    @property
    def labels(self) -> Tensor:
        return self._labels

    @property
    def channels(self) -> int:
        return self._channels

    def image_sizes(self) -> np.ndarray:
        if self._sizes is None:
            infos = self._read_headers()
            self._sizes = np.asarray([(i.height, i.width) for i in infos], np.int64).reshape(-1, 2)
        return self._sizes

    def subset(self, indices: Indices) -> FileImages:
        index = _as_index_array(indices)
        labels = self._labels.numpy()
        return FileImages(
            [(self._paths[i], int(labels[i])) for i in index],
            channels=self._channels,
            sizes=None if self._sizes is None else self._sizes[index],
            root=self._root,
        )

    def _relative(self, path: Path) -> str:
        if self._root is not None and path.is_relative_to(self._root):
            return path.relative_to(self._root).as_posix()
        return path.as_posix()

    def update_digest(self, hasher: hashlib._Hash) -> None:
        hasher.update(f"files:{len(self)}:{self._channels}\0".encode())
        for path, label in zip(self._paths, self._labels.tolist(), strict=True):
            try:
                size = path.stat().st_size
                hasher.update(f"{self._relative(path)}\0{label}\0{size}\0".encode())
                with path.open("rb") as handle:
                    while chunk := handle.read(_HASH_CHUNK):
                        hasher.update(chunk)
            except OSError as exc:
                raise DatasetError(
                    f"cannot read {path} to fingerprint the dataset: {exc}; "
                    "restore the file or load the dataset again without it."
                ) from exc
