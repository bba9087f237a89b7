"""The frozen-prefix feature cache: split forward passes, keys, LRU, disk sharing, and cached
trials that train exactly like uncached ones (pretrained EfficientNet-Lite0 on digits, CPU)."""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from autotransfer.backbones import Backbone, create_backbone
from autotransfer.cache import (
    FeatureCache,
    FeatureKey,
    Features,
    MemoryLRU,
    Shapes,
    make_cache,
)
from autotransfer.data import TensorImages, TransferDataset, load_dataset
from autotransfer.finetune import Precision, TrialConfig, bypass_reason, fit, make_feed, train_trial
from autotransfer.finetune._feeds import feature_key


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # Tiny batches gain nothing from intra-op threads, and on a shared machine their
    # spin-waits multiply wall time; equality of cached and uncached runs holds either way.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits() -> TransferDataset:
    return load_dataset("digits", seed=0, max_train=160, max_val=80)


def _config(**overrides: object) -> TrialConfig:
    base: dict[str, object] = dict(
        freeze_depth=0, epochs=2, batch_size=32, input_size=32, base_lr=0.05, device="cpu"
    )
    base.update(overrides)
    return TrialConfig(**base)  # type: ignore[arg-type]


# --- splitting the forward pass ------------------------------------------------------------

FAST_FAMILIES = ["efficientnet_lite0", "resnet18", "mobilenet_v2", "mobilenet_v3_small"]
SLOW_FAMILIES = ["efficientnet_b0", "regnet_x_400mf", "convnext_tiny", "swin_t"]


def _check_split(name: str) -> None:
    torch.manual_seed(0)
    weights = "DEFAULT" if name.startswith("efficientnet_lite") else "none"
    backbone = create_backbone(name, num_classes=5, weights=weights, input_size=32).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = backbone(x)
        for k in range(backbone.num_blocks):
            prefix, suffix = backbone.split(k)
            assert len(suffix) > 0 and (len(prefix) > 0)
            torch.testing.assert_close(suffix(prefix(x)), expected, rtol=0, atol=0)
        prefix, suffix = backbone.split(0)
        assert prefix(x).ndim == 2, "at k = 0 the cached features are the pooled vector"


@pytest.mark.parametrize("name", FAST_FAMILIES)
def test_split_forward_equals_full_forward_at_every_cut(name: str) -> None:
    _check_split(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW_FAMILIES)
def test_split_forward_equals_full_forward_slow_families(name: str) -> None:
    _check_split(name)


def test_unsplittable_family_falls_back_with_a_reason() -> None:
    vit = create_backbone("vit_b_32", num_classes=3, weights="none", input_size=32)
    assert vit.split_unavailable and "vit_b_32" in vit.split_unavailable
    with pytest.raises(ValueError, match="cannot split"):
        vit.split(0)
    reason = bypass_reason(_config(backbone="vit_b_32"), vit)
    assert reason is not None and "cannot be split" in reason


def test_frozen_blocks_run_in_eval_mode_so_drop_connect_is_off() -> None:
    backbone = create_backbone("efficientnet_lite0", num_classes=3, input_size=32)
    backbone.set_freeze_depth(3)
    backbone.train()
    blocks = backbone.model._blocks  # type: ignore[union-attr]
    assert not blocks[0].training and not blocks[12].training  # frozen: blocks 1, 13
    assert blocks[13].training and blocks[15].training  # the top 3 blocks (14..16) train
    prefix, _ = backbone.split()
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(prefix(x), prefix(x), rtol=0, atol=0)


# --- keys -----------------------------------------------------------------------------------


def _key(backbone: Backbone, k: int, ds: TransferDataset, **config: object) -> FeatureKey:
    prefix, _ = backbone.split(k)
    cfg = _config(freeze_depth=k, **config)
    cut = backbone.first_trainable_block(k)
    return feature_key(
        backbone, prefix, cut, ds, cfg, Precision(torch.device("cpu"), False), FeatureCache()
    )


def test_key_changes_with_weights_cut_data_and_preprocessing(digits: TransferDataset) -> None:
    bb = create_backbone("efficientnet_lite0", num_classes=10, input_size=32)
    base = _key(bb, 0, digits).digest()
    assert _key(bb, 0, digits).digest() == base, "the key is deterministic"
    again = create_backbone("efficientnet_lite0", num_classes=10, input_size=32, dropout=0.5)
    assert _key(again, 0, digits).digest() == base, "head and dropout are not in the prefix"

    assert _key(bb, 1, digits).digest() != base, "cut point"
    random = create_backbone("efficientnet_lite0", num_classes=10, weights="none", input_size=32)
    assert _key(random, 0, digits).digest() != base, "weights"
    with torch.no_grad():
        again.model._conv_stem.weight[0, 0, 0, 0] += 1e-3  # type: ignore[index,union-attr]
    assert _key(again, 0, digits).digest() != base, "one changed prefix weight"
    top = create_backbone("efficientnet_lite0", num_classes=10, input_size=32)
    with torch.no_grad():
        top.model._conv_head.weight.add_(1.0)  # type: ignore[union-attr]
    assert _key(top, 0, digits).digest() != base, "the neck is frozen at k = 0"
    assert _key(top, 1, digits).digest() == _key(bb, 1, digits).digest(), "but above cut at k=1"

    images = digits.train.images.clone()  # type: ignore[attr-defined]
    images[0, 0, 0, 0] ^= 1
    one_pixel = replace(digits, train=TensorImages(images, digits.train.labels))
    assert _key(bb, 0, one_pixel).digest() != base, "one pixel of the data"
    subset = load_dataset("digits", seed=0, max_train=150, max_val=80)
    assert _key(bb, 0, subset).digest() != base, "another subset of the data"

    big = create_backbone("efficientnet_lite0", num_classes=10, input_size=64)
    assert _key(big, 0, digits, input_size=64).digest() != base, "input size"
    other_norm = create_backbone("efficientnet_lite0", num_classes=10, input_size=32)
    other_norm.mean = (0.485, 0.456, 0.406)
    assert _key(other_norm, 0, digits).digest() != base, "normalisation"


# --- cached trials train exactly like uncached ones -----------------------------------------


def _val_logits(backbone: Backbone, ds: TransferDataset) -> torch.Tensor:
    from autotransfer.data import BatchTransform, resize_uint8

    transform = BatchTransform(backbone.mean, backbone.std)
    images = resize_uint8(ds.val.images, 32)  # type: ignore[attr-defined]
    with torch.no_grad():
        return backbone.eval()(transform(images, train=False))


@pytest.mark.parametrize(
    "overrides",
    [
        {"freeze_depth": 0, "dropout": 0.2},
        # LP-FT at depth 4 with L2-SP: the head-only phase runs on the depth-4 cut as well
        {"freeze_depth": 4, "lp_ft_epochs": 1, "l2sp": 0.01, "dropout": 0.1},
    ],
    ids=["linear-probe", "lp-ft-l2sp"],
)
def test_cached_trial_gives_the_same_logits_and_accuracy(
    digits: TransferDataset, tmp_path: Path, overrides: dict[str, object]
) -> None:
    config = _config(**overrides)
    cache = FeatureCache(tmp_path / "features")
    plain, plain_net = fit(config, digits)
    first, first_net = fit(config, digits, cache=cache)  # fills the cache
    later = train_trial(config, digits, cache=cache)  # reads it from memory
    assert (cache.misses, cache.hits_memory) == (1, 1)
    torch.testing.assert_close(
        _val_logits(first_net, digits), _val_logits(plain_net, digits), rtol=1e-4, atol=1e-5
    )
    for result in (first, later):
        assert [m.val_accuracy for m in result.history] == [m.val_accuracy for m in plain.history]
        assert [m.phase for m in result.history] == [m.phase for m in plain.history]
        for got, want in zip(result.history, plain.history, strict=True):
            assert got.val_loss == pytest.approx(want.val_loss, rel=1e-5)
            assert got.train_loss == pytest.approx(want.train_loss, rel=1e-5)
    assert plain.best_val_accuracy > 0.3, "the trial must learn something to compare"
    if config.freeze_depth == 0:
        other_process = FeatureCache(tmp_path / "features")  # a fresh process: disk only
        again = train_trial(config, digits, cache=other_process)
        assert (other_process.misses, other_process.hits_disk) == (0, 1)
        assert [m.val_accuracy for m in again.history] == [m.val_accuracy for m in plain.history]


def test_fp16_storage_stays_within_tolerance(digits: TransferDataset, tmp_path: Path) -> None:
    config = _config(epochs=1)
    plain = train_trial(config, digits, cache=FeatureCache())
    half = FeatureCache(tmp_path, fp16=True)
    result = train_trial(config, digits, cache=half)
    stored = half.disk.load(half.disk.digests()[0])  # type: ignore[union-attr]
    assert stored is not None and stored.train.dtype == torch.float16
    assert result.final_val_loss == pytest.approx(plain.final_val_loss, rel=1e-2)
    assert abs(result.final_val_accuracy - plain.final_val_accuracy) <= 0.03


# --- bypasses --------------------------------------------------------------------------------


def test_augmentation_and_full_fine_tuning_bypass_the_cache(
    digits: TransferDataset, caplog: pytest.LogCaptureFixture
) -> None:
    cache = FeatureCache()
    backbone = create_backbone("efficientnet_lite0", num_classes=10, input_size=32)
    precision = Precision(torch.device("cpu"), False)
    with caplog.at_level(logging.INFO, logger="autotransfer.cache"):
        for _ in range(2):
            feed = make_feed(
                _config(augment=True), digits, backbone, torch.device("cpu"), precision, cache
            )
            assert not feed.cached
    assert cache.misses == 0 and len(cache.memory) == 0
    assert sum("random augmentation" in r.getMessage() for r in caplog.records) == 1, "once"
    full = _config(freeze_depth=backbone.num_blocks)
    assert "nothing is frozen" in (bypass_reason(full, backbone) or "")
    assert bypass_reason(_config(freeze_depth=3), backbone) is None


# --- the stores -----------------------------------------------------------------------------


def _features(value: float, rows: int = 10) -> Features:
    return Features(torch.full((rows, 8), value), torch.full((rows // 2, 8), value))


def _shapes(rows: int = 10) -> Shapes:
    return (rows, 8), (rows // 2, 8)


def _filler(value: float) -> Callable[[Features], None]:
    def fill(out: Features) -> None:
        out.train.fill_(value)
        out.val.fill_(value)

    return fill


def _fake_key(name: str) -> FeatureKey:
    return FeatureKey("tiny", name, 1, "data", 32, (0.5,), (0.5,), "cpu-float32")


def test_lru_byte_budget_evicts_least_recently_used(tmp_path: Path) -> None:
    nbytes = _features(0.0).nbytes
    lru = MemoryLRU(budget_bytes=2 * nbytes)
    for name in "abc":
        lru.put(name, _features(0.0))
    assert "a" not in lru and "b" in lru and "c" in lru and lru.evictions == 1
    assert lru.get("b") is not None
    lru.put("d", _features(0.0))
    assert "c" not in lru and "b" in lru, "reading b made c the least recently used"
    lru.put("huge", _features(0.0, rows=100))
    assert "huge" not in lru and lru.nbytes <= lru.budget_bytes

    cache = FeatureCache(tmp_path, memory_bytes=nbytes)
    cache.get_or_compute(_fake_key("x"), _shapes(), _filler(1.0))
    cache.get_or_compute(_fake_key("y"), _shapes(), _filler(2.0))
    got = cache.get_or_compute(_fake_key("x"), _shapes(), lambda _: pytest.fail("x is on disk"))
    assert got is not None and float(got.train[0, 0]) == 1.0
    assert (cache.misses, cache.hits_disk, cache.memory.evictions) == (2, 1, 2)


def _share_worker(directory: str, counter: str, barrier: Any, queue: Any) -> None:
    def fill(out: Features) -> None:
        with open(counter, "a") as handle:
            handle.write("computed\n")
        barrier.wait(timeout=60)  # let the other process ask for the same key now
        time.sleep(0.5)  # it waits on the lock while this one is still computing
        out.train.copy_(torch.arange(6000.0).view(600, 10))
        out.val.copy_(torch.arange(100.0).view(10, 10))

    torch.set_num_threads(1)
    cache = FeatureCache(directory)
    if barrier.wait(timeout=60) != 0:  # the other process goes first
        barrier.wait(timeout=60)
    features = cache.get_or_compute(_fake_key("shared"), ((600, 10), (10, 10)), fill)
    assert features is not None
    queue.put((float(features.train.sum()), tuple(features.train.shape), cache.misses))


def test_processes_share_the_disk_cache_and_compute_once(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    counter = tmp_path / "computed.txt"
    barrier = ctx.Barrier(2)
    workers = [
        ctx.Process(target=_share_worker, args=(str(tmp_path / "c"), str(counter), barrier, queue))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert counter.read_text().count("computed") == 1, "one process computes, the rest wait"
    assert sorted(r[2] for r in results) == [0, 1]
    assert {r[:2] for r in results} == {(float(sum(range(6000))), (600, 10))}
    store = FeatureCache(tmp_path / "c").disk
    assert store is not None and len(store.digests()) == 1
    assert not list((tmp_path / "c").glob("*/*.tmp")), "no temporary file is left behind"


def test_make_cache_places_the_store_beside_a_sqlite_file(tmp_path: Path) -> None:
    assert make_cache(False) is None
    cache = make_cache(True, storage=f"sqlite:///{tmp_path}/study.db")
    assert cache is not None and cache.directory == tmp_path / "study-features"
    explicit = make_cache(True, tmp_path / "mine", storage="postgresql+psycopg://x@y/z")
    assert explicit is not None and explicit.directory == tmp_path / "mine"


# --- wiring: search workers and the CLI ---------------------------------------------------------


def test_search_trials_share_one_cache_entry_beside_the_study(tmp_path: Path) -> None:
    from autotransfer.search import SearchRequest, Seed, run_search

    request = SearchRequest(
        dataset="synthetic:classes=3,per_class=24,size=16,difficulty=0.2,shift=0.0",
        space="small_data",
        stop="trials",
        trials=2,
        max_epochs=1,
        input_size=32,
        storage=f"sqlite:///{tmp_path}/study.db",
        study_name="cached",
        device="cpu",
        recommend=False,
    )
    linear_probe = {"freeze_depth": 0, "augment": False}
    seeds = [Seed({**linear_probe, "base_lr": lr}) for lr in (0.05, 0.01)]
    study = run_search(request, seeds=seeds)
    assert [t.params["base_lr"] for t in study.trials] == [0.05, 0.01]
    entries = list((tmp_path / "study-features").glob("*/meta.json"))
    assert len(entries) == 1, "both linear-probe trials read the same frozen features"

    uncached = request.model_copy(update={"cache": False, "study_name": "plain"})
    plain = run_search(uncached, seeds=seeds)
    assert [t.value for t in plain.trials] == [t.value for t in study.trials]


def test_cli_train_uses_and_reuses_the_cache(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from autotransfer.cli import app

    args = ["train", "--max-train", "60", "--max-val", "30", "--epochs", "1", "--input-size"]
    args += ["32", "--device", "cpu", "--threads", "1", "--json", "--cache-dir", str(tmp_path)]
    runner = CliRunner()
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert len(list(tmp_path.glob("*/meta.json"))) == 1
    again = runner.invoke(app, args)
    plain = runner.invoke(app, [*args, "--no-cache"])
    accuracy = '"best_val_accuracy"'
    lines = [[ln for ln in r.output.splitlines() if accuracy in ln] for r in (first, again, plain)]
    assert lines[0] and lines[0] == lines[1] == lines[2]
