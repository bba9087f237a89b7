"""A reader for the idx format of MNIST-style files (plain or gzip-compressed).

Layout: two zero bytes, a type code, the number of dimensions ``d``; then ``d`` big-endian
uint32 sizes; then the values, big-endian, in C order.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from autotransfer.data._errors import DatasetError

_GZIP_MAGIC = b"\x1f\x8b"
_TYPE_CODES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one idx file into an array in native byte order.

    Gzip compression is recognised by content, not by name. A wrong magic number, an
    unknown type code, or a size that disagrees with the header raises ``DatasetError``
    naming the file.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == _GZIP_MAGIC:
            raw = gzip.decompress(raw)
    except FileNotFoundError as exc:
        raise DatasetError(f"idx file {path} does not exist.") from exc
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(
            f"cannot read idx file {path}: {exc}; the download is probably incomplete, "
            "fetch the file again."
        ) from exc
    return parse_idx(raw, source=str(path))


def parse_idx(raw: bytes, *, source: str = "<bytes>") -> np.ndarray:
    """Parse uncompressed idx bytes; ``source`` names the data in error messages."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPE_CODES:
        raise DatasetError(
            f"{source} is not an idx file: magic number {raw[:4].hex() or 'missing'} should be "
            "0000 followed by a type code (08 for uint8) and the number of dimensions; "
            "check that the right file was given and that it is not an HTML error page."
        )
    dtype, ndim = _TYPE_CODES[raw[2]], raw[3]
    header_end = 4 + 4 * ndim
    if len(raw) < header_end:
        raise DatasetError(
            f"idx file {source} is truncated inside its header ({len(raw)} bytes for "
            f"{ndim} dimensions); fetch the file again."
        )
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(raw) - header_end
    if actual != expected:
        problem = "is truncated" if actual < expected else "has trailing bytes"
        raise DatasetError(
            f"idx file {source} {problem}: header says shape {shape} ({expected} bytes of "
            f"data) but it holds {actual}; fetch the file again."
        )
    values = np.frombuffer(raw, dtype=dtype, offset=header_end).reshape(shape)
    return values.astype(dtype.newbyteorder("="), copy=True)
