"""Image-folder datasets: one subfolder per class, optionally under train/ and val/."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from autotransfer.data._dataset import TransferDataset
from autotransfer.data._errors import DatasetError
from autotransfer.data._images import IMAGE_EXTENSIONS, ImageInfo, is_image_file, probe_image
from autotransfer.data._sources import FileImages
from autotransfer.data._split import stratified_split

log = logging.getLogger(__name__)

_LAYOUT_HINT = "pass a folder with one subfolder per class, or train/ and val/ subfolders"
_LISTED_PATHS = 5


def _visible(name: str) -> bool:
    return not name.startswith(".")


def _class_dirs(folder: Path) -> dict[str, Path]:
    classes = {p.name: p for p in sorted(folder.iterdir()) if p.is_dir() and _visible(p.name)}
    if not classes:
        raise DatasetError(
            f"{folder} has no class subfolders; put each class's images in a subfolder named "
            f"after the class (e.g. {folder / 'cat' / '0001.png'}), or {_LAYOUT_HINT}."
        )
    if len(classes) == 1:
        raise DatasetError(
            f"{folder} has a single class folder ({next(iter(classes))!r}); classification "
            "needs at least 2 classes: add a subfolder for each other class."
        )
    return classes


def _image_files(class_dir: Path) -> list[Path]:
    """Image files anywhere below ``class_dir``, sorted, skipping hidden files and folders."""
    found = []
    for dirpath, dirnames, filenames in os.walk(class_dir):
        dirnames[:] = sorted(d for d in dirnames if _visible(d))
        found += [Path(dirpath) / f for f in sorted(filenames) if is_image_file(Path(f))]
    if not found:
        extensions = "/".join(sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS))
        raise DatasetError(
            f"class folder {class_dir} has no images; put at least one {extensions} file in "
            "it or remove the folder."
        )
    return found


def _collect(folder: Path, class_names: Sequence[str]) -> list[tuple[Path, int]]:
    return [
        (path, label)
        for label, name in enumerate(class_names)
        for path in _image_files(folder / name)
    ]


class _Scan:
    """The load-time check of every file: sizes and channels, or why it is unreadable."""

    def __init__(self, items: Sequence[tuple[Path, int]]) -> None:
        self.infos: dict[Path, ImageInfo] = {}
        self.bad: dict[Path, str] = {}
        for path, _ in items:
            try:
                self.infos[path] = probe_image(path)
            except Exception as exc:  # PIL's decoders raise many unrelated exception types.
                self.bad[path] = f"{type(exc).__name__}: {exc}"

    def report(self, on_corrupt: Literal["skip", "error"]) -> None:
        if not self.bad:
            return
        listed = "; ".join(f"{p} ({why})" for p, why in list(self.bad.items())[:_LISTED_PATHS])
        more = f" and {len(self.bad) - _LISTED_PATHS} more" if len(self.bad) > _LISTED_PATHS else ""
        if on_corrupt == "error":
            raise DatasetError(
                f"{len(self.bad)} unreadable image file(s): {listed}{more}. Delete or replace "
                "them, or load with on_corrupt='skip' to leave them out."
            )
        log.warning("skipping %d unreadable image file(s): %s%s", len(self.bad), listed, more)


def _source(
    items: Sequence[tuple[Path, int]],
    scan: _Scan,
    channels: int,
    root: Path,
    class_dirs: dict[str, Path],
) -> FileImages:
    kept = [(path, label) for path, label in items if path in scan.infos]
    names = list(class_dirs)
    present = {label for _, label in kept}
    for label, name in enumerate(names):
        if label not in present:
            raise DatasetError(
                f"class folder {class_dirs[name]} has no readable images (all were skipped as "
                "unreadable); replace the damaged files or remove the folder."
            )
    sizes = [(scan.infos[p].height, scan.infos[p].width) for p, _ in kept]
    return FileImages(kept, channels=channels, sizes=sizes, root=root)


def load_image_folder(
    root: Path, *, val_fraction: float, seed: int, on_corrupt: Literal["skip", "error"]
) -> TransferDataset:
    """Load ``root/<class>/*`` (split here) or ``root/train/<class>/*`` + ``root/val/<class>/*``.

    Class names are the sorted subfolder names; images may sit in nested folders below a
    class folder; hidden files and folders are ignored. Every file is opened and verified
    once, here, in this process: unreadable files are skipped (and listed in
    ``skipped_files``) or stop the load, per ``on_corrupt``. If any file is colour the
    whole dataset is 3-channel; grayscale files are then expanded when decoded.
    """
    if not root.is_dir():
        raise DatasetError(f"no such directory: {root}; {_LAYOUT_HINT}.")
    train_dir, val_dir = root / "train", root / "val"
    if train_dir.is_dir() and val_dir.is_dir():
        train_classes, val_classes = _class_dirs(train_dir), _class_dirs(val_dir)
        if set(train_classes) != set(val_classes):
            only_train = sorted(set(train_classes) - set(val_classes))
            only_val = sorted(set(val_classes) - set(train_classes))
            raise DatasetError(
                f"class folders of {train_dir} and {val_dir} differ: missing in val/: "
                f"{only_train}, missing in train/: {only_val}; every class needs a folder "
                "in both."
            )
        class_dirs = {name: train_dir / name for name in train_classes}
        class_names = tuple(class_dirs)
        check_test_classes(root, class_names)
        train_items = _collect(train_dir, class_names)
        val_items = _collect(val_dir, class_names)
        scan = _Scan(train_items + val_items)
        scan.report(on_corrupt)
        channels = max(info.channels for info in scan.infos.values()) if scan.infos else 1
        train = _source(train_items, scan, channels, root, class_dirs)
        val = _source(val_items, scan, channels, root, {n: val_dir / n for n in class_names})
    elif train_dir.is_dir() != val_dir.is_dir():
        have, lack = ("train", "val") if train_dir.is_dir() else ("val", "train")
        raise DatasetError(
            f"{root} has {have}/ but no {lack}/; add {root / lack}/<class>/ folders, or put "
            f"the class folders directly in {root} to split by val_fraction."
        )
    else:
        class_dirs = _class_dirs(root)
        class_names = tuple(class_dirs)
        items = _collect(root, class_names)
        scan = _Scan(items)
        scan.report(on_corrupt)
        channels = max(info.channels for info in scan.infos.values()) if scan.infos else 1
        source = _source(items, scan, channels, root, class_dirs)
        train_idx, val_idx = stratified_split(
            source.labels.numpy(), val_fraction, seed, class_names
        )
        train, val = source.subset(train_idx), source.subset(val_idx)
    return TransferDataset(
        name=root.resolve().name or str(root),
        train=train,
        val=val,
        class_names=class_names,
        skipped_files=tuple(scan.bad),
    )


def check_test_classes(root: Path, class_names: Sequence[str]) -> None:
    """Refuse a ``test/`` folder whose class folders differ from ``train/``'s, by their names
    alone: the search opens none of its files (``load_test_folder`` does, after it)."""
    test_dir = root / "test"
    if not test_dir.is_dir():
        return
    test_classes = set(_class_dirs(test_dir))
    if test_classes != set(class_names):
        raise DatasetError(
            f"class folders of {test_dir} differ from {root / 'train'}: missing in test/: "
            f"{sorted(set(class_names) - test_classes)}, not in train/: "
            f"{sorted(test_classes - set(class_names))}; give test/ the same class folders."
        )


def load_test_folder(
    root: Path, class_names: Sequence[str], channels: int, on_corrupt: Literal["skip", "error"]
) -> FileImages | None:
    """``root/test/<class>/*`` with the training split's classes and channels, or None when
    there is no ``test/``. Read only once the search has ended."""
    test_dir = root / "test"
    if not test_dir.is_dir():
        return None
    check_test_classes(root, class_names)
    items = _collect(test_dir, class_names)
    scan = _Scan(items)
    scan.report(on_corrupt)
    return _source(items, scan, channels, root, {n: test_dir / n for n in class_names})
