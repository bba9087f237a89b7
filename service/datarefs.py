"""Dataset and weight references a client may name: built-in datasets, or paths that resolve
inside the configured data roots. Checked before anything is opened."""

from __future__ import annotations

import os
from pathlib import Path

from autotransfer.data import DatasetRef, npz_footprint
from autotransfer.errors import UserInputError

BUILTIN = ("digits", "fashion-mnist")
_NAMED = ("digits", "fashion-mnist", "synthetic")  # what a reference may begin with, not a path
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
        raise RefError(
            field,
            f"{field}={ref!r}: no such file or folder in the data roots (relative paths are "
            f"taken in {roots[0]}); name one there, or a built-in dataset ({', '.join(BUILTIN)}, "
            "synthetic:...).",
        )
    return resolved


def _bare_name(ref: str) -> bool:
    """A reference that is neither a built-in's name nor written as a path (``good``): the
    library would look for it in the working folder, the service in its first root."""
    return (
        ref.partition(":")[0] not in _NAMED
        and not any(c in ref for c in "/\\\x00")
        and not ref.startswith(("~", "."))
        and not ref.endswith(".npz")
    )


def as_root_relative(value: object) -> object:
    """A bare name (``good``) as the relative path it means on a server (``./good``, in the
    first data root); anything else unchanged."""
    return f"./{value}" if isinstance(value, str) and _bare_name(value) else value


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):  # too long for the file system
        return False


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def check_contained(field: str, path: Path, roots: list[Path]) -> None:
    """Refuse a folder (already resolved inside a root) any entry of which, a class folder or
    an image, is a link resolving outside every root: the loaders follow links, and the
    service must open nothing outside its roots on behalf of a request.

    Links that stay inside the roots are followed and checked in turn (each real folder
    once, so a link loop ends). Only links are resolved; ``scandir`` says which they are.
    """
    seen: set[Path] = set()
    pending = [path]
    while pending:
        folder = pending.pop()
        if folder in seen:
            continue
        seen.add(folder)
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            raise RefError(
                field, f"{field}: cannot list {folder} ({exc.strerror}); fix its permissions."
            ) from None
        for entry in sorted(entries, key=lambda e: e.name):
            real = Path(entry.path)
            if entry.is_symlink():
                try:
                    real = real.resolve(strict=True)
                except (OSError, RuntimeError):  # dangling, or a loop: the loader skips it
                    continue
                if not _inside(real, roots):
                    raise RefError(
                        field,
                        f"{field}: {entry.path} links to {real}, outside the server's data "
                        f"roots ({', '.join(str(r) for r in roots)}); copy the files into a "
                        "data root instead of linking to them.",
                    )
            try:
                is_dir = entry.is_dir()  # follows a link, which now points inside
            except OSError:
                continue
            if is_dir:
                pending.append(real)


def check_dataset(
    ref: str | DatasetRef,
    roots: list[Path],
    field: str = "dataset",
    *,
    max_bytes: int | None = None,
) -> DatasetRef:
    """The dataset the worker will load (a path resolved inside a data root, every file of it
    too), or ``RefError``. A bare name that is no built-in is a path in the first root, as
    any relative path; a ``.npz`` whose arrays would take more than ``max_bytes`` is refused
    by its headers, before anything is loaded."""
    if isinstance(ref, str) and roots and _bare_name(ref):
        if not _exists(roots[0] / ref):
            raise RefError(
                field,
                f"{field}={ref!r} is neither a built-in dataset ({', '.join(BUILTIN)}, "
                f"synthetic:...) nor a file or folder in the first data root {roots[0]}; "
                "name one of those (relative paths are taken in the first root).",
            )
        ref = f"./{ref}"
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
    resolved = check_path(field, str(parsed.path), roots)
    if resolved.is_dir():
        check_contained(field, resolved, roots)
    elif max_bytes is not None and parsed.kind == "npz":
        try:
            size = npz_footprint(resolved)
        except UserInputError as exc:
            raise RefError(field, f"{field}: {exc}") from None
        if size > max_bytes:
            raise RefError(
                field,
                f"{field}={parsed.text!r} holds arrays of {size / 2**20:,.1f} MiB once loaded, "
                f"over this server's AUTOTRANSFER_MAX_DATASET_BYTES={max_bytes:,}; send a "
                "smaller archive (or an image folder, read file by file).",
            )
    return parsed.with_path(resolved)


def check_weights(ref: str, roots: list[Path]) -> str:
    """Weight names pass through; a weights file must lie inside the data roots."""
    looks_like_path = "/" in ref or "\\" in ref or ref.endswith((".pth", ".pt", ".safetensors"))
    if not looks_like_path:
        return ref
    return str(check_path("weights", ref, roots))
