"""Dataset and weight references a client may name: built-in datasets, or paths that resolve
inside the configured data roots. Checked before anything is opened."""

from __future__ import annotations

from pathlib import Path

from autotransfer.data._synthetic import SyntheticSpec
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
    resolved = candidate.resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        raise RefError(
            field,
            f"{field}={ref!r} is outside the server's data roots "
            f"({', '.join(str(r) for r in roots)}); copy the data into a data root.",
        )
    if not resolved.exists():
        raise RefError(field, f"{field}={ref!r}: no such file or folder in the data roots.")
    return resolved


def check_dataset(ref: str, roots: list[Path], field: str = "dataset") -> str:
    """The dataset reference the worker will load (a path made absolute), or ``RefError``."""
    name, _, options = ref.partition(":")
    if ref in BUILTIN:
        return ref
    if name == "synthetic":
        try:
            spec = SyntheticSpec.parse(options)
        except UserInputError as exc:
            raise RefError(field, f"{field}={ref!r}: {exc}") from None
        size = spec.classes * spec.per_class * spec.channels * spec.size**2
        if size > MAX_SYNTHETIC_BYTES:
            raise RefError(
                field,
                f"{field}={ref!r} would generate {size / 2**20:.0f} MiB of images; keep "
                f"classes × per_class × channels × size² under {MAX_SYNTHETIC_BYTES // 2**20} MiB.",
            )
        return ref
    if name == "fashion-mnist" and options:
        return f"fashion-mnist:{check_path(field, options, roots)}"
    return str(check_path(field, ref, roots))


def check_weights(ref: str, roots: list[Path]) -> str:
    """Weight names pass through; a weights file must lie inside the data roots."""
    looks_like_path = "/" in ref or "\\" in ref or ref.endswith((".pth", ".pt", ".safetensors"))
    if not looks_like_path:
        return ref
    return str(check_path("weights", ref, roots))
