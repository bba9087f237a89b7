"""The feature cache's budgets: what fits on disk is stored, what fits in memory is kept
there, the rest is skipped and said so; the disk store never outgrows its budget; a real
224-px folder search (pretrained EfficientNet-Lite0, digits written as 300-px PNGs) under
small budgets finishes; file datasets are decoded once per image, not once per epoch."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from filelock import FileLock
from PIL import Image

from autotransfer.backbones import create_backbone
from autotransfer.cache import DiskBudget, DiskStore, FeatureCache, FeatureKey, Features, GiB
from autotransfer.data import FileImages, load_dataset
from autotransfer.finetune import TrialConfig, train_trial
from autotransfer.finetune._feeds import feature_shapes

TINY = "synthetic:classes=3,per_class=24,size=16,difficulty=0.2,shift=0.0"


def _key(name: str) -> FeatureKey:
    return FeatureKey("tiny", name, 1, "data", 32, (0.5,), (0.5,), "cpu-float32")


def _fill(value: float) -> Callable[[Features], None]:
    def fill(out: Features) -> None:
        out.train.fill_(value)
        out.val.fill_(value)

    return fill


def _shapes(rows: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return (rows, 256), (rows // 4, 256)


def _nbytes(rows: int) -> int:
    return DiskStore.entry_bytes(_shapes(rows), torch.float32)


def test_sets_go_to_disk_memory_or_nowhere_by_the_budgets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    small, medium, large = _nbytes(8), _nbytes(64), _nbytes(512)
    cache = FeatureCache(tmp_path, memory_bytes=medium + small, disk_bytes=2 * small)
    assert cache.budget is not None and cache.disk is not None
    first = cache.get_or_compute(_key("a"), _shapes(8), _fill(1.0))
    second = cache.get_or_compute(_key("b"), _shapes(8), _fill(2.0))
    assert first is not None and second is not None and len(cache.disk.digests()) == 2
    with caplog.at_level(logging.INFO, logger="autotransfer.cache"):
        # the disk is full: a set that fits the memory budget is kept in memory only
        kept = cache.get_or_compute(_key("c"), _shapes(64), _fill(3.0))
        assert kept is not None and float(kept.val[0, 0]) == 3.0
        assert len(cache.disk.digests()) == 2 and cache.memory.get(_key("c").digest()) is kept
        # one that fits neither is skipped: None, a warning, and the reason on record
        assert cache.get_or_compute(_key("d"), _shapes(512), _fill(4.0)) is None
    assert cache.disk.nbytes() <= cache.budget.max_bytes
    (described, why), *_ = cache.skipped.items()
    assert described == _key("d").describe() and list(cache.skipped) == [described]
    assert f"{large / 2**10:.0f} KiB" in why and "memory budget" in why
    assert any("kept in memory only" in r.getMessage() for r in caplog.records)
    assert any("skipped" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    # what was stored is read back from disk by a fresh cache, without computing
    again = FeatureCache(tmp_path, disk_bytes=2 * small)
    got = again.get_or_compute(_key("b"), _shapes(8), lambda _: pytest.fail("b is on disk"))
    assert got is not None and float(got.train[0, 0]) == 2.0


def test_a_set_kept_in_memory_only_is_one_warning_per_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autotransfer.cache import _cache

    monkeypatch.setattr(_cache, "_SAID", set())  # as in a fresh process
    cache = FeatureCache(tmp_path, memory_bytes=GiB, disk_bytes=0)  # the disk takes nothing
    with caplog.at_level(logging.INFO, logger="autotransfer.cache"):
        for name in "abc":
            assert cache.get_or_compute(_key(name), _shapes(8), _fill(1.0)) is not None
    kept = [r for r in caplog.records if "kept in memory only" in r.getMessage()]
    assert [r.levelno for r in kept] == [logging.WARNING, logging.INFO, logging.INFO]
    again = FeatureCache(tmp_path / "other", memory_bytes=GiB, disk_bytes=0)
    with caplog.at_level(logging.INFO, logger="autotransfer.cache"):
        assert again.get_or_compute(_key("d"), _shapes(8), _fill(1.0)) is not None
    assert caplog.records[-1].levelno == logging.INFO, "a second cache does not warn again"
    assert "cache_disk_gb" in kept[0].getMessage() and _key("a").describe() in kept[0].getMessage()


def test_the_cli_says_once_that_sets_are_kept_in_memory_only(tmp_path: Path) -> None:
    args = [sys.executable, "-m", "autotransfer", "search", "--dataset", TINY, "--trials", "3"]
    args += ["--space", "small_data", "--stop", "trials", "--max-epochs", "1", "--input-size"]
    args += ["32", "--device", "cpu", "--threads", "1", "--no-recommend", "--cache-disk-gb", "0"]
    args += ["--storage", f"sqlite:///{tmp_path / 's.db'}", "--plots", str(tmp_path)]
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if "kept in memory only" in line]
    assert len(lines) == 1 and "WARNING" in lines[0], done.stderr[-3000:]


def test_a_failed_fill_leaves_nothing_behind(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path, disk_bytes=GiB)

    def broken(out: Features) -> None:
        out.train[:2] = 1.0
        raise RuntimeError("out of memory, say")

    with pytest.raises(RuntimeError, match="out of memory"):
        cache.get_or_compute(_key("x"), _shapes(8), broken)
    assert cache.disk is not None and cache.disk.nbytes() == 0 and not cache.disk.digests()
    assert not list(tmp_path.glob("*.reserved")), "the reservation is released"
    got = cache.get_or_compute(_key("x"), _shapes(8), _fill(5.0))
    assert got is not None and float(got.val[-1, -1]) == 5.0


def test_reservations_count_while_their_writer_lives(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path, disk_bytes=10 * _nbytes(8))
    budget, store = cache.budget, cache.disk
    assert isinstance(budget, DiskBudget) and store is not None
    full = budget.room().nbytes
    marker = {"bytes": 6 * _nbytes(8), "pid": 1}
    (tmp_path / "live.reserved").write_text(json.dumps(marker))
    with FileLock(str(tmp_path / "live.lock")):  # a writer that is still computing
        assert budget.room().nbytes == full - marker["bytes"]
        assert _nbytes(64) > full - marker["bytes"] and _nbytes(64) <= full
        assert cache.get_or_compute(_key("y"), _shapes(64), _fill(1.0)) is not None
        assert store.digests() == [], "it would fit, but not beside the live reservation"
    # its writer is gone (nobody holds the lock): the next look drops the reservation
    assert budget.room().nbytes == full
    assert not (tmp_path / "live.reserved").exists()


def test_the_disk_reserve_is_never_used(tmp_path: Path) -> None:
    import shutil

    cache = FeatureCache(tmp_path, disk_bytes=1 << 60)  # no budget of its own to speak of
    assert cache.budget is not None
    room = cache.budget.room()
    disk = shutil.disk_usage(tmp_path)
    slack = 256 * 2**20  # other programs write to this disk meanwhile
    assert room.nbytes <= disk.free - max(GiB, 0.05 * disk.total) + slack
    assert "free" in room.limit


# --- a real 224-px folder search -----------------------------------------------------------


def _png_folder(root: Path, per_class: dict[str, int], classes: int = 3) -> Path:
    """Digits (8×8 scans) written as 300×300 RGB PNGs, like a folder of camera images."""
    digits = load_dataset("digits", seed=0)
    images, labels = digits.train.images, digits.train.labels  # type: ignore[attr-defined]
    for split, count in per_class.items():
        for label in range(classes):
            folder = root / split / str(label)
            folder.mkdir(parents=True)
            rows = (labels == label).nonzero().flatten()
            offset = 0 if split == "train" else 40
            for i in rows[offset : offset + count].tolist():
                pixels = images[i, 0].numpy()
                Image.fromarray(pixels).convert("RGB").resize((300, 300)).save(folder / f"{i}.png")
    return root


def test_a_224px_folder_search_under_small_budgets_finishes_within_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from autotransfer.search import SearchRequest, Seed, run_search

    root = _png_folder(tmp_path / "scans", {"train": 10, "val": 5})
    dataset = load_dataset(root)
    net = create_backbone("efficientnet_lite0", num_classes=3, weights="DEFAULT", input_size=224)

    def set_bytes(depth: int) -> int:
        prefix, _ = net.split(depth)
        config = TrialConfig(freeze_depth=depth, input_size=224, device="cpu")
        return DiskStore.entry_bytes(feature_shapes(prefix, net, dataset, config), torch.float32)

    head_only, middle, early = set_bytes(0), set_bytes(7), set_bytes(12)
    assert head_only < middle < early
    # the head-only set fits on disk; the middle one only in memory; the early one nowhere
    disk_bytes, memory_bytes = (head_only + middle) // 2, (middle + early) // 2
    request = SearchRequest(
        dataset=str(root),
        space="small_data",
        stop="trials",
        trials=3,
        max_epochs=1,
        input_size=224,
        storage=f"sqlite:///{tmp_path}/study.db",
        study_name="scans-224",
        device="cpu",
        recommend=False,
        keep_model=False,
        cache_disk_gb=disk_bytes / GiB,
        cache_memory_gb=memory_bytes / GiB,
    )
    seeds = [Seed({"freeze_depth": depth, "augment": False}) for depth in (0, 7, 12)]
    with caplog.at_level(logging.INFO, logger="autotransfer.cache"):
        study = run_search(request, seeds=seeds)
    assert [t.params["freeze_depth"] for t in study.trials] == [0, 7, 12]
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    assert all(0 <= t.value <= 1 for t in study.trials)  # type: ignore[operator]
    store = FeatureCache(tmp_path / "study-features").disk
    assert store is not None and len(store.digests()) == 1
    assert 0 < store.nbytes() <= disk_bytes
    messages = [r.getMessage() for r in caplog.records]
    assert any("kept in memory only" in m for m in messages)
    skipped = f"feature cache skipped efficientnet_lite0 cut {net.first_trainable_block(12)},"
    assert any(m.startswith(skipped) for m in messages), messages


# --- decoding once --------------------------------------------------------------------------


def test_a_file_dataset_is_decoded_once_per_image_not_once_per_epoch(tmp_path: Path) -> None:
    root = _png_folder(tmp_path / "scans", {"train": 6, "val": 3})
    dataset = load_dataset(root)
    assert isinstance(dataset.train, FileImages) and isinstance(dataset.val, FileImages)
    config = TrialConfig(freeze_depth=3, epochs=3, batch_size=8, input_size=64, device="cpu")
    once = (len(dataset.train), len(dataset.val))
    assert once == (18, 9)
    train_trial(config, dataset)  # no cache: every epoch runs the whole network on images
    assert (dataset.train.decodes, dataset.val.decodes) == once
    train_trial(config.model_copy(update={"base_lr": 0.001}), dataset)  # same size: no decode
    assert (dataset.train.decodes, dataset.val.decodes) == once
