"""Synthetic image classification data with a dial for difficulty and for domain shift.

Generative process (all randomness from one ``numpy`` generator seeded by ``seed``):

1. **Textures.** A texture is ``(1 - shift) · natural + shift · binary``. *natural* is what
   photos look like statistically: Gaussian noise shaped to a 1/f amplitude spectrum
   (power falls as 1/f²), coloured through one luminance and two colour-opponent fields
   so channels correlate as in photos, plus two or three soft Gaussian blobs of random
   colour ("objects"). *binary* is what ImageNet features are not tuned to: a 1- or
   2-pixel checkerboard XOR-ed with a random block mask, 0/1 per channel independently
   (saturated primaries, all energy at high frequency).
2. **Class prototypes.** One shared texture ``B`` and one texture ``T_k`` per class;
   the prototype is ``P_k = B + w · (T_k − B)`` with separation ``w = 1 − difficulty``,
   so difficulty 0 gives unrelated prototypes and difficulty 1 identical ones.
3. **Samples.** Each image is its class prototype, circularly translated by up to
   ``difficulty · size / 10`` pixels, with contrast scaled by ``1 ± 0.2·difficulty`` and
   brightness offset by ``± 0.1·difficulty``, plus Gaussian pixel noise of standard
   deviation ``0.02 + 0.3·difficulty``; then pushed towards binary by ``shift``
   (``(1 − shift) · x + shift · [x > 0.5]``), clipped to [0, 1] and quantised to uint8.

So difficulty 0 is separable by nearest class mean on raw pixels and difficulty 1 is at
chance (the classes share one prototype); shift 0 looks like smooth colour photographs
and shift 1 like binary noise. ``per_class`` images are made per class and then split
stratified by ``val_fraction``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from autotransfer.data._dataset import TransferDataset
from autotransfer.data._errors import DatasetError
from autotransfer.data._sources import TensorImages
from autotransfer.data._split import stratified_split

_INT_RANGES = {"classes": (2, 1000), "per_class": (2, 100_000), "size": (4, 1024)}
_MAX_BYTES = 4 << 30


@dataclass(frozen=True)
class SyntheticSpec:
    """Parameters of the synthetic generator; see the module docstring for their effect."""

    classes: int = 5
    per_class: int = 40
    size: int = 32
    channels: int = 3
    difficulty: float = 0.3
    shift: float = 0.0

    def __post_init__(self) -> None:
        for name, (low, high) in _INT_RANGES.items():
            value = getattr(self, name)
            if not isinstance(value, int) or not low <= value <= high:
                raise DatasetError(
                    f"synthetic {name} must be an integer in [{low}, {high}], got {value!r}."
                )
        if self.channels not in (1, 3):
            raise DatasetError(f"synthetic channels must be 1 or 3, got {self.channels!r}.")
        for name in ("difficulty", "shift"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise DatasetError(f"synthetic {name} must be in [0, 1], got {value!r}.")
        total = self.nbytes
        if total > _MAX_BYTES:
            raise DatasetError(
                f"synthetic data of {total / 2**30:.1f} GiB is too large; lower per_class, "
                "classes or size."
            )

    @property
    def nbytes(self) -> int:
        """The size of the generated images in bytes (uint8)."""
        return self.classes * self.per_class * self.channels * self.size**2

    @classmethod
    def parse(cls, options: str) -> SyntheticSpec:
        """Parse ``"difficulty=0.5,shift=0.8,classes=5"`` (any subset, any order)."""
        valid = {f.name: f for f in fields(cls)}
        values: dict[str, int | float] = {}
        for item in filter(None, (part.strip() for part in options.split(","))):
            key, sep, text = item.partition("=")
            key = key.strip()
            if not sep or key not in valid:
                raise DatasetError(
                    f"synthetic option {item!r} is not key=value with a key among "
                    f"{', '.join(valid)}; e.g. 'synthetic:difficulty=0.5,shift=0.8,classes=5'."
                )
            try:
                values[key] = float(text) if valid[key].type == "float" else int(text)
            except ValueError:
                raise DatasetError(
                    f"synthetic option {key}={text!r} is not a number; e.g. {key}="
                    f"{getattr(cls(), key)}."
                ) from None
        return cls(**values)  # type: ignore[arg-type]

    def describe(self) -> str:
        return "synthetic:" + ",".join(f"{f.name}={getattr(self, f.name):g}" for f in fields(self))


def _unit_noise(rng: np.random.Generator, size: int, count: int) -> np.ndarray:
    """``count`` fields with a 1/f amplitude spectrum, each zero mean and unit variance."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    freq = np.hypot(fy, fx)
    freq[0, 0] = 1.0 / size
    spectrum = (
        rng.standard_normal((count, size, size)) + 1j * rng.standard_normal((count, size, size))
    ) / freq
    field = np.fft.ifft2(spectrum).real
    field -= field.mean(axis=(1, 2), keepdims=True)
    return field / (field.std(axis=(1, 2), keepdims=True) + 1e-12)


def _natural(rng: np.random.Generator, channels: int, size: int) -> np.ndarray:
    lum, c1, c2 = _unit_noise(rng, size, 3)
    if channels == 3:
        image = np.stack([lum + 0.3 * c1, lum - 0.15 * c1 + 0.25 * c2, lum - 0.15 * c1 - 0.25 * c2])
    else:
        image = lum[None]
    image = 0.5 + 0.15 * image
    yy, xx = np.mgrid[0:size, 0:size]
    for _ in range(int(rng.integers(2, 4))):
        cy, cx = rng.uniform(0, size, 2)
        radius = rng.uniform(size / 8, size / 4)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))
        colour = rng.uniform(-0.35, 0.35, (channels, 1, 1))
        image = image + colour * blob
    return image.clip(0.0, 1.0)


def _binary(rng: np.random.Generator, channels: int, size: int) -> np.ndarray:
    period = int(rng.integers(1, 3))
    block = int(rng.choice([2, 4]))
    yy, xx = np.mgrid[0:size, 0:size]
    checker = ((yy // period + xx // period) % 2).astype(bool)
    cells = -(-size // block)
    mask = rng.integers(0, 2, (channels, cells, cells)).astype(bool)
    mask = mask.repeat(block, axis=1).repeat(block, axis=2)[:, :size, :size]
    return (checker[None] ^ mask).astype(np.float64)


def _texture(rng: np.random.Generator, spec: SyntheticSpec) -> np.ndarray:
    natural = _natural(rng, spec.channels, spec.size)
    binary = _binary(rng, spec.channels, spec.size)
    return (1.0 - spec.shift) * natural + spec.shift * binary


def _samples(rng: np.random.Generator, prototype: np.ndarray, spec: SyntheticSpec) -> np.ndarray:
    n, size, d = spec.per_class, spec.size, spec.difficulty
    reach = round(d * size / 10)
    dy = rng.integers(-reach, reach + 1, n)
    dx = rng.integers(-reach, reach + 1, n)
    rows = (np.arange(size)[None, :] - dy[:, None]) % size
    cols = (np.arange(size)[None, :] - dx[:, None]) % size
    x = prototype[:, rows[:, :, None], cols[:, None, :]].transpose(1, 0, 2, 3)
    contrast = 1.0 + rng.uniform(-0.2 * d, 0.2 * d, (n, 1, 1, 1))
    brightness = rng.uniform(-0.1 * d, 0.1 * d, (n, 1, 1, 1))
    x = (x - 0.5) * contrast + 0.5 + brightness
    x = x + rng.normal(0.0, 0.02 + 0.3 * d, x.shape)
    x = (1.0 - spec.shift) * x + spec.shift * (x > 0.5)
    return np.round(x.clip(0.0, 1.0) * 255.0).astype(np.uint8)


def generate_synthetic(spec: SyntheticSpec, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images ``[classes · per_class, channels, size, size]`` and int64 labels."""
    rng = np.random.default_rng([seed, 0x5E7])
    shared = _texture(rng, spec)
    separation = 1.0 - spec.difficulty
    images, labels = [], []
    for k in range(spec.classes):
        prototype = shared + separation * (_texture(rng, spec) - shared)
        images.append(_samples(rng, prototype, spec))
        labels.append(np.full(spec.per_class, k, dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def load_synthetic(spec: SyntheticSpec, *, val_fraction: float, seed: int) -> TransferDataset:
    """Generate ``spec`` with ``seed`` and split it stratified by ``val_fraction``."""
    images, labels = generate_synthetic(spec, seed)
    class_names = tuple(f"class_{k}" for k in range(spec.classes))
    train_idx, val_idx = stratified_split(labels, val_fraction, seed, class_names)
    source = TensorImages(torch.from_numpy(images), labels)
    return TransferDataset(
        name=spec.describe(),
        train=source.subset(train_idx),
        val=source.subset(val_idx),
        class_names=class_names,
    )
