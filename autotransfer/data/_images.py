"""Image files through PIL: the cheap load-time check and the per-sample decode.

Everything a model sees is 8-bit grayscale or 8-bit RGB. Grayscale-like modes (1-bit,
8-bit, 16-bit, 32-bit integer and float, with or without alpha) become one channel;
every other mode (RGB, RGBA, palette, CMYK, YCbCr, LAB, HSV ...) becomes three.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})

_HIGH_DEPTH_GRAY_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_GRAY_MODES = _HIGH_DEPTH_GRAY_MODES | {"1", "L", "LA", "La"}
_EXIF_ORIENTATION_TAG = 0x0112
# EXIF orientations 5-8 rotate by 90 degrees, so the stored width is the shown height.
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})


def is_image_file(path: Path) -> bool:
    """Whether ``path`` looks like an image by name; hidden files never do."""
    return not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS


@dataclass(frozen=True)
class ImageInfo:
    """What the load-time check learns about one file without decoding its pixels."""

    height: int
    width: int
    channels: int


def read_header(path: Path) -> ImageInfo:
    """Displayed size and channel count from the file header, without decoding pixels."""
    with Image.open(path) as img:
        width, height = img.size
        channels = 1 if img.mode in _GRAY_MODES else 3
        orientation = img.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    if orientation in _SWAPPING_ORIENTATIONS:
        height, width = width, height
    return ImageInfo(height=height, width=width, channels=channels)


def probe_image(path: Path) -> ImageInfo:
    """Open and verify ``path``, then read its header (see ``read_header``).

    ``verify`` walks the file's structure (PNG chunk checksums, for example) without
    decoding pixels, so checking a whole folder stays cheap. It raises whatever PIL raises
    for a bad file; the caller decides whether that skips the file or stops the load.
    """
    with Image.open(path) as img:
        img.verify()
    # verify() leaves the image unusable, so the header comes from a second open.
    return read_header(path)


def decode_image(path: Path, channels: int) -> np.ndarray:
    """Decode ``path`` to a uint8 array ``[H, W, channels]`` (``channels`` is 1 or 3)."""
    with Image.open(path) as raw:
        img = ImageOps.exif_transpose(raw)
        return image_to_array(img, channels)


def image_to_array(img: Image.Image, channels: int) -> np.ndarray:
    """Convert a PIL image of any mode to uint8 ``[H, W, channels]``."""
    if img.mode in _HIGH_DEPTH_GRAY_MODES:
        img = Image.fromarray(_to_uint8(np.asarray(img)))
    if img.mode in _GRAY_MODES:
        gray = np.asarray(img.convert("L"))[:, :, None]
        return np.array(gray if channels == 1 else gray.repeat(3, axis=2))
    if img.mode == "P" and "transparency" in img.info:
        # PIL wants palette transparency resolved through RGBA before alpha is dropped.
        img = img.convert("RGBA")
    rgb = img.convert("RGB")
    if channels == 1:
        return np.array(rgb.convert("L"))[:, :, None]
    # np.array copies: PIL's buffer is read-only and torch wants writable arrays.
    return np.array(rgb)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    """Map 16-bit, 32-bit or float grayscale to 0..255 without clipping the range away."""
    if values.dtype.kind == "u" and values.dtype.itemsize == 2:
        return np.round(values / 257.0).astype(np.uint8)
    data = values.astype(np.float64)
    lo, hi = float(np.nanmin(data)), float(np.nanmax(data))
    if values.dtype.kind == "f" and lo >= 0.0 and hi <= 1.0:
        scaled = data * 255.0
    elif values.dtype.kind != "f" and lo >= 0 and hi <= 255:
        scaled = data
    elif values.dtype.kind != "f" and lo >= 0 and hi <= 65535:
        scaled = data / 257.0
    else:
        # Unknown calibration (negative or huge values): stretch what is there to 0..255.
        scaled = (data - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(data)
    return np.round(np.nan_to_num(scaled)).clip(0, 255).astype(np.uint8)
