"""The untouched test split: held out, never read by the search, scored once after it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from autotransfer.data import DatasetError, load_dataset, load_test_split
from autotransfer.record import read_study
from autotransfer.search import SearchRequest, run_search

CLASSES = ("circle", "square", "stripe")


def _image(kind: str, rng: np.random.Generator) -> Image.Image:
    x = rng.integers(0, 60, (16, 16), dtype=np.uint8)
    if kind == "circle":
        yy, xx = np.mgrid[:16, :16]
        x[(yy - 8) ** 2 + (xx - 8) ** 2 < 25] = 230
    elif kind == "square":
        x[4:12, 4:12] = 230
    else:
        x[:, ::4] = 230
    return Image.fromarray(x)


def _folder(root: Path, splits: dict[str, int], classes: tuple[str, ...] = CLASSES) -> Path:
    rng = np.random.default_rng(0)
    for split, per_class in splits.items():
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                _image(name, rng).save(folder / f"{i}.png")
    return root


def _unread(files: list[Path]) -> None:
    """Set each file's access time far before its modification time: a later read moves it
    (Linux's relatime updates atime when it is older than mtime)."""
    for f in files:
        os.utime(f, (0, f.stat().st_mtime))


def _atime_works(tmp_path: Path) -> bool:
    probe = tmp_path / "probe.bin"
    probe.write_bytes(b"x")
    _unread([probe])
    probe.read_bytes()
    return probe.stat().st_atime > 0


def _request(root: Path, tmp_path: Path, **extra: object) -> SearchRequest:
    fields: dict[str, object] = dict(
        dataset=str(root),
        space="small_data",
        stop="trials",
        trials=1,
        max_epochs=1,
        input_size=32,
        storage=f"sqlite:///{tmp_path}/s.db",
        study_name="t",
        device="cpu",
        recommend=False,
    )
    return SearchRequest.model_validate({**fields, **extra})


def test_a_test_folder_is_never_read_by_the_search_and_scored_once(tmp_path: Path) -> None:
    if not _atime_works(tmp_path):
        pytest.skip("this file system does not record access times")
    root = _folder(tmp_path / "shapes", {"train": 8, "val": 4, "test": 5})
    test_files = sorted((root / "test").rglob("*.png"))
    _unread(test_files)
    seen: list[float] = []

    request = _request(root, tmp_path)
    from autotransfer.search import _session

    close = _session.SearchSession.close

    def checked_close(self: _session.SearchSession) -> None:
        # every trial has run: nothing of test/ may have been opened yet
        seen.extend(f.stat().st_atime for f in test_files)
        close(self)

    _session.SearchSession.close = checked_close  # type: ignore[method-assign]
    try:
        study = run_search(request)
    finally:
        _session.SearchSession.close = close  # type: ignore[method-assign]
    assert seen and all(t == 0 for t in seen)  # unread during the search
    test = read_study(study).test
    assert test is not None and test["images"] == len(test_files) == 15
    assert test["metric"] == "accuracy" and 0.0 <= test["score"] <= 1.0
    assert test["trial"] == read_study(study).model["trial"]  # type: ignore[index]
    assert sum(test["class_report"]["support"]) == 15
    assert any(f.stat().st_atime > 0 for f in test_files)  # read after the search, once
    again = run_search(_request(root, tmp_path, trials=1))  # resumed: nothing new to score
    assert read_study(again).test == test


def test_a_test_folder_with_other_classes_is_refused_before_any_trial(tmp_path: Path) -> None:
    root = _folder(tmp_path / "shapes", {"train": 3, "val": 2})
    _folder(root, {"test": 2}, classes=("circle", "square", "triangle"))
    with pytest.raises(DatasetError, match=r"missing in test/: \['stripe'\], not in train/"):
        load_dataset(root)


def test_test_fraction_holds_out_a_stratified_share_the_search_never_trains_on() -> None:
    full = load_dataset("digits")
    held = load_dataset("digits", test_fraction=0.25)
    assert held.test is not None and held.fingerprint != full.fingerprint
    assert len(held.train) + len(held.test) == len(full.train)
    assert len(held.val) == len(full.val)
    counts = np.bincount(held.test.labels.numpy(), minlength=10)
    assert counts.min() >= 1 and counts.sum() == pytest.approx(0.25 * len(full.train), abs=10)
    again = load_dataset("digits", test_fraction=0.25)
    assert again.fingerprint == held.fingerprint  # the same share at every load
    assert load_test_split("digits", held, test_fraction=0.25) is held.test


@pytest.mark.parametrize("fraction", [0.0, -0.1, 0.6, 1.0])
def test_a_test_fraction_outside_the_range_is_refused(fraction: float) -> None:
    with pytest.raises(DatasetError, match=r"test_fraction must be in \(0, 0.5\]"):
        load_dataset("digits", test_fraction=fraction)
    with pytest.raises(ValidationError, match="test_fraction"):
        SearchRequest(dataset="digits", test_fraction=fraction)


def test_npz_test_arrays_are_read_only_for_the_test_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (60, 8, 8), dtype=np.uint8)
    y = np.arange(60) % 3
    path = tmp_path / "d.npz"
    np.savez(path, x=x, y=y, x_test=x[:9], y_test=y[:9])
    ds = load_dataset(path)
    assert ds.test is None  # the search's dataset holds no test split
    test = load_test_split(path, ds, test_fraction=None)
    assert test is not None and len(test) == 9
    with pytest.raises(DatasetError, match="has its own test split"):
        load_test_split(path, load_dataset(path, test_fraction=0.2), test_fraction=0.2)
    np.savez(path, x=x, y=y, x_test=x[:9], y_test=y[:9] + 5)
    with pytest.raises(DatasetError, match=r"y_test has labels outside 0\.\.2"):
        load_test_split(path, load_dataset(path), test_fraction=None)
