"""Dataset and weight references a client may name: built-in datasets, or paths that resolve
inside the configured data roots. Checked before anything is opened."""

from __future__ import annotations

from pathlib import Path

from autotransfer.data import DatasetRef
from autotransfer.errors import UserInputError

BUILTIN = ("digits", "fashion-mnist")
# a synthetic set is generated in memory: keep a request from asking for tens of gigabytes
MAX_SYNTHETIC_BYTES = 512 * 1024 * 1024


class RefError(UserInputError):
    """A reference outside what the server allows; the message names the field and the fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_path(field: str, ref: str, roots: list[Path]) -> Path:
    """``ref`` resolved (symlinks followed) and inside one of ``roots``, else ``RefError``.

    Relative paths are taken relative to the first root. Nothing is read: only ``resolve``
    and ``exists`` touch the file system.
    """
    if not roots:
        raise RefError(
            field,
            f"{field}={ref!r}: this server accepts no dataset paths (AUTOTRANSFER_DATA_ROOTS is "
            f"empty); use a built-in dataset ({', '.join(BUILTIN)}, synthetic:...) or ask the "
            "operator to configure data roots.",
        )
    if "\x00" in ref or ".." in Path(ref).parts or ref.startswith("~"):
        raise RefError(field, f"{field}={ref!r}: '..' and '~' are not allowed in paths.")
    raw = Path(ref)
    candidate = raw if raw.is_absolute() else roots[0] / raw
    try:
        resolved = candidate.resolve()
        exists = resolved.exists()
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise RefError(
            field,
            f"{field}={ref[:80]!r}… is not a usable path ({exc.strerror}); name a file "
            "or folder inside the data roots.",
        ) from None
    if not any(resolved.is_relative_to(root) for root in roots):
        raise RefError(
            field,
            f"{field}={ref!r} is outside the server's data roots "
            f"({', '.join(str(r) for r in roots)}); copy the data into a data root.",
        )
    if not exists:
        raise RefError(field, f"{field}={ref!r}: no such file or folder in the data roots.")
    return resolved


def check_dataset(ref: str | DatasetRef, roots: list[Path], field: str = "dataset") -> DatasetRef:
    """The dataset the worker will load (a path resolved inside a data root), or ``RefError``."""
    try:
        parsed = DatasetRef.parse(ref)
    except UserInputError as exc:
        raise RefError(field, f"{field}: {exc}") from None
    if parsed.synthetic is not None:
        size = parsed.synthetic.nbytes
        if size > MAX_SYNTHETIC_BYTES:
            raise RefError(
                field,
                f"{field}={parsed.text!r} would generate {size / 2**20:.0f} MiB of images; keep "
                f"classes × per_class × channels × size² under {MAX_SYNTHETIC_BYTES // 2**20} MiB.",
            )
        return parsed
    if parsed.path is None:
        return parsed
    return parsed.with_path(check_path(field, str(parsed.path), roots))


def check_weights(ref: str, roots: list[Path]) -> str:
    """Weight names pass through; a weights file must lie inside the data roots."""
    looks_like_path = "/" in ref or "\\" in ref or ref.endswith((".pth", ".pt", ".safetensors"))
    if not looks_like_path:
        return ref
    return str(check_path("weights", ref, roots))
