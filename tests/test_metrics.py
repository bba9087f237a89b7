"""Metrics for skewed data, class weights and the balanced sampler (issue: real datasets)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn import metrics as skm

from autotransfer.cache import make_cache
from autotransfer.data import TensorImages, TransferDataset, balanced_sampler, load_dataset
from autotransfer.errors import UserInputError
from autotransfer.finetune import (
    TrialConfig,
    check_metric,
    class_report,
    class_weights,
    score,
    train_trial,
)
from autotransfer.space import parse_spec

# fixed predictions on a skewed three-class task: 6 / 3 / 1 images
LABELS = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 2])
PROBS = np.array(
    [
        [0.9, 0.05, 0.05],
        [0.8, 0.1, 0.1],
        [0.7, 0.2, 0.1],
        [0.6, 0.3, 0.1],
        [0.3, 0.6, 0.1],  # a 0 taken for a 1
        [0.5, 0.1, 0.4],
        [0.2, 0.7, 0.1],
        [0.1, 0.8, 0.1],
        [0.6, 0.3, 0.1],  # a 1 taken for a 0
        [0.5, 0.1, 0.4],  # the lone 2 taken for a 0
    ]
)


def test_each_metric_is_scikit_learns_on_fixed_predictions() -> None:
    s = score(LABELS, PROBS)
    predicted = PROBS.argmax(1)
    assert s.accuracy == pytest.approx(skm.accuracy_score(LABELS, predicted)) == 0.7
    # recalls 5/6, 2/3, 0/1: their mean
    assert s.balanced_accuracy == pytest.approx((5 / 6 + 2 / 3 + 0) / 3)
    assert s.balanced_accuracy == pytest.approx(skm.balanced_accuracy_score(LABELS, predicted))
    assert s.macro_f1 == pytest.approx(
        skm.f1_score(LABELS, predicted, average="macro", zero_division=0)
    )
    assert s.auroc is None  # three classes: the binary area is undefined
    assert s.auroc_ovr == pytest.approx(
        skm.roc_auc_score(LABELS, PROBS, multi_class="ovr", average="macro")
    )
    binary = np.array([0, 0, 1, 1, 1])
    p1 = np.array([0.1, 0.6, 0.4, 0.8, 0.9])
    two = score(binary, np.stack([1 - p1, p1], 1))
    assert two.auroc == pytest.approx(skm.roc_auc_score(binary, p1)) == two.auroc_ovr
    assert two.value("auroc") == two.auroc


def test_majority_guessing_scores_its_share_in_accuracy_and_chance_otherwise() -> None:
    labels = np.array([0] * 19 + [1])
    always_zero = np.tile([0.9, 0.1], (20, 1))
    s = score(labels, always_zero)
    assert s.accuracy == pytest.approx(0.95)
    assert s.balanced_accuracy == pytest.approx(0.5)
    assert s.macro_f1 < 0.5


def test_the_class_report_has_precision_recall_support_and_the_confusion_matrix() -> None:
    report = class_report(LABELS, PROBS.argmax(1), ["a", "b", "c"])
    assert report["classes"] == ["a", "b", "c"]
    assert report["support"] == [6, 3, 1]
    assert report["recall"] == [round(5 / 6, 4), round(2 / 3, 4), 0.0]
    assert report["precision"][2] == 0.0  # never predicted
    assert report["confusion_matrix"] == [[5, 1, 0], [1, 2, 0], [1, 0, 0]]


def test_bad_metrics_are_refused_naming_the_value_and_the_fix() -> None:
    with pytest.raises(UserInputError, match=r"'top5' does not exist; use one of accuracy"):
        check_metric("top5", 10)
    with pytest.raises(UserInputError, match=r"auroc needs two classes.*has 10; use auroc_ovr"):
        check_metric("auroc", 10)
    check_metric("auroc", 2)
    check_metric("auroc_ovr", 10)
    body = {"name": "s", "parameters": {"freeze_depth": {"type": "depth", "blocks": [0]}}}
    with pytest.raises(UserInputError, match=r"budget\.objective"):
        parse_spec({**body, "budget": {"objective": "top5"}}, source="s.yaml")
    multi = parse_spec(
        {**body, "budget": {"objective": "macro_f1_and_cost", "pruner": {"type": "none"}}},
        source="s.yaml",
    )
    assert multi.budget.metric == "macro_f1" and multi.budget.multi_objective


def test_class_weights_make_every_class_count_the_same_in_the_loss() -> None:
    labels = torch.tensor([0] * 12 + [1] * 3 + [2] * 1)
    logits = torch.randn(len(labels), 3, generator=torch.Generator().manual_seed(0))
    each = F.cross_entropy(logits, labels, reduction="none")
    per_class = torch.stack([each[labels == c].mean() for c in range(3)])
    inverse = class_weights(labels, 3, "inverse")
    assert inverse is not None
    # inverse weights: the loss is the mean over classes of each class's mean loss
    weighted = F.cross_entropy(logits, labels, weight=inverse)
    assert weighted == pytest.approx(float(per_class.mean()), rel=1e-5)
    assert float(inverse[labels].mean()) == pytest.approx(1.0)  # the loss keeps its scale
    sqrt = class_weights(labels, 3, "sqrt_inverse")
    assert sqrt is not None and float(sqrt[0] / sqrt[2]) == pytest.approx(1 / 12**0.5)
    assert class_weights(labels, 3, "none") is None
    with pytest.raises(ValueError, match="class_weighting must be one of"):
        class_weights(labels, 3, "balanced")


def test_the_balanced_sampler_draws_every_class_about_equally() -> None:
    labels = torch.tensor([0] * 500 + [1] * 50 + [2] * 10)
    drawn = torch.tensor(list(balanced_sampler(labels, torch.Generator().manual_seed(0))))
    counts = torch.bincount(labels[drawn], minlength=3)
    assert len(drawn) == len(labels)
    assert all(abs(int(c) - len(labels) / 3) < 0.15 * len(labels) for c in counts), counts
    again = list(balanced_sampler(labels, torch.Generator().manual_seed(0)))
    assert again == drawn.tolist()  # seeded: the same draw


def _skewed(per_class: tuple[int, ...]) -> TransferDataset:
    """Digits with classes 0…k−1 cut to ``per_class`` training images each."""
    digits = load_dataset("digits", seed=0)
    x, y = digits.train.images, digits.train.labels  # type: ignore[attr-defined]
    keep = torch.cat([torch.nonzero(y == c).flatten()[:n] for c, n in enumerate(per_class)])
    vx, vy = digits.val.images, digits.val.labels  # type: ignore[attr-defined]
    vkeep = torch.nonzero(vy < len(per_class)).flatten()
    names = tuple(digits.class_names[: len(per_class)])
    return TransferDataset(
        "skewed-digits", TensorImages(x[keep], y[keep]), TensorImages(vx[vkeep], vy[vkeep]), names
    )


def _config(**overrides: object) -> TrialConfig:
    base: dict[str, object] = dict(
        freeze_depth=0, base_lr=0.05, epochs=2, batch_size=16, input_size=32, device="cpu"
    )
    return TrialConfig(**{**base, **overrides})  # type: ignore[arg-type]


def test_a_trial_scores_and_picks_its_best_epoch_by_the_metric(tmp_path: object) -> None:
    data = _skewed((60, 6, 3))
    result = train_trial(_config(metric="balanced_accuracy", epochs=3), data)
    assert result.metric == "balanced_accuracy"
    best = max(result.history, key=lambda m: m.val_score)
    assert result.best_epoch == best.epoch and result.best_val_score == best.val_score
    report = result.class_report
    matrix = np.array(report["confusion_matrix"])
    recalls = matrix.diagonal() / matrix.sum(1)
    assert result.best_val_score == pytest.approx(recalls.mean(), abs=1e-9)
    assert best.val_metrics["accuracy"] == best.val_accuracy
    assert report["support"] == [int(n) for n in matrix.sum(1)]
    with pytest.raises(UserInputError, match="auroc needs two classes"):
        train_trial(_config(metric="auroc"), data)


def test_weighting_and_balanced_sampling_change_training_and_cache_agrees(
    tmp_path: object,
) -> None:
    data = _skewed((60, 6, 3))
    plain = train_trial(_config(), data)
    weighted = train_trial(_config(class_weighting="inverse"), data)
    assert weighted.history[0].train_loss != plain.history[0].train_loss
    balanced = _config(balanced_sampler=True)
    uncached = train_trial(balanced, data)
    cached = train_trial(balanced, data, cache=make_cache(True, str(tmp_path)))
    assert uncached.history[0].train_loss != plain.history[0].train_loss
    # the cached feed draws the same balanced batches as the image loader
    assert [m.val_accuracy for m in cached.history] == pytest.approx(
        [m.val_accuracy for m in uncached.history], abs=1e-6
    )
    assert (
        dataclasses.asdict(cached)["class_report"] == dataclasses.asdict(uncached)["class_report"]
    )
