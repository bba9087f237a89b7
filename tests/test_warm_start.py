"""The warm start: one linear probe on the cached top features starts every trial's head."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from autotransfer.backbones import create_backbone
from autotransfer.cache import make_cache
from autotransfer.data import load_dataset
from autotransfer.finetune import Precision, TrialConfig, train_trial
from autotransfer.finetune._feeds import feature_key
from autotransfer.finetune._warm import probe_head

DATA = "synthetic:classes=3,per_class=24,size=16,difficulty=0.4,shift=0.0"
CPU = torch.device("cpu")


def _config(**update: object) -> TrialConfig:
    fields: dict[str, object] = dict(
        freeze_depth=0, epochs=1, batch_size=16, input_size=32, device="cpu", base_lr=0.05
    )
    return TrialConfig(**{**fields, **update})  # type: ignore[arg-type]


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_warm_and_cold_depth_zero_trials_agree_on_features_and_the_probe_head(
    tmp_path: Path,
) -> None:
    dataset = load_dataset(DATA)
    cache = make_cache(True, tmp_path)
    assert cache is not None
    train_trial(_config(), dataset, cache=cache)  # a cold linear probe: caches the top features
    cached = _files(tmp_path)
    net = create_backbone("efficientnet_lite0", num_classes=3, weights="DEFAULT", input_size=32)
    precision = Precision(CPU, True)
    head = probe_head(net, dataset, _config(), CPU, precision, cache)
    assert _files(tmp_path) == cached, "the probe reads the features the cold trial cached"
    prefix, _ = net.split(0)
    key = feature_key(net, prefix, net.num_blocks, dataset, _config(), precision, cache)
    features = cache.get_or_compute(key, ((0,), (0,)), lambda _: pytest.fail("it is cached"))
    assert features is not None
    weight = next(t for t in head.values() if t.dim() == 2)
    bias = next(t for t in head.values() if t.dim() == 1)
    logits = features.val.float() @ weight.T + bias
    hits = int((logits.argmax(1) == dataset.val.labels).sum())
    probe_accuracy = hits / len(dataset.val.labels)
    # a warm-started depth-0 trial starts from that head: with a learning rate too small to
    # move it, its first epoch scores exactly what the probe scores
    warm = train_trial(_config(warm_start=True, base_lr=1e-12), dataset, cache=cache)
    assert warm.history[0].val_accuracy == probe_accuracy
    assert probe_accuracy > 0.5, "the scenario needs a probe that learned something"
