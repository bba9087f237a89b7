"""Validation metrics: the one a search maximises, and what a trial records per class.

Skewed classes are the rule in real data (5 % defects, a rare disease): a model that only
predicts the majority class scores its share in plain accuracy and nothing in the others.

- ``accuracy``: the share of correct predictions.
- ``balanced_accuracy``: the mean of the per-class recalls (chance level is 1 / classes
  whatever the class sizes).
- ``macro_f1``: the unweighted mean of the per-class F1 scores.
- ``auroc``: the area under the ROC curve of the positive class (label 1) for two classes;
  ``auroc_ovr`` the macro mean of one-vs-rest areas for any number of classes.

Every figure is scikit-learn's (``sklearn.metrics``), computed from the predicted class
probabilities, so these numbers are the ones a user reproduces with the same library.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
from sklearn import metrics as skm

from autotransfer.errors import UserInputError

Metric = Literal["accuracy", "balanced_accuracy", "macro_f1", "auroc", "auroc_ovr"]
METRICS: tuple[str, ...] = get_args(Metric)


def check_metric(metric: str, num_classes: int) -> None:
    """Refuse a metric the task cannot have, saying which to use instead."""
    if metric not in METRICS:
        raise UserInputError(
            f"objective metric {metric!r} does not exist; use one of {', '.join(METRICS)}."
        )
    if metric == "auroc" and num_classes != 2:
        raise UserInputError(
            f"objective auroc needs two classes, but the dataset has {num_classes}; use "
            "auroc_ovr (the macro mean of one-vs-rest areas) or balanced_accuracy."
        )


@dataclass(frozen=True)
class Scores:
    """Every metric of one evaluation; an AUROC is None where it is undefined (a class
    missing from the labels)."""

    accuracy: float
    balanced_accuracy: float
    macro_f1: float
    auroc: float | None
    auroc_ovr: float | None

    def value(self, metric: str) -> float:
        """The value of ``metric`` (NaN for an undefined AUROC, which no trial can win on)."""
        value = getattr(self, metric)
        return float("nan") if value is None else float(value)

    def to_dict(self) -> dict[str, float | None]:
        return {name: getattr(self, name) for name in METRICS}


def ranked(value: float) -> float:
    """``value`` as a sort key: an undefined score (NaN) ranks below every defined one."""
    return -math.inf if math.isnan(value) else value


def _auroc(labels: np.ndarray, probs: np.ndarray, *, ovr: bool) -> float | None:
    classes = probs.shape[1]
    if len(np.unique(labels)) < (classes if ovr else 2) or (not ovr and classes != 2):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not ovr:
            return float(skm.roc_auc_score(labels, probs[:, 1]))
        if classes == 2:  # one-vs-rest of two classes is the binary area
            return float(skm.roc_auc_score(labels, probs[:, 1]))
        return float(
            skm.roc_auc_score(
                labels, probs, multi_class="ovr", average="macro", labels=list(range(classes))
            )
        )


def score(labels: np.ndarray, probs: np.ndarray) -> Scores:
    """All metrics of class probabilities ``probs`` (n × classes) against ``labels`` (n)."""
    if len(labels) == 0:
        raise ValueError(f"no labels to score, but got {labels.shape=}.")
    predicted = probs.argmax(1)
    classes = list(range(probs.shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a class never predicted: its precision is 0
        return Scores(
            accuracy=float(skm.accuracy_score(labels, predicted)),
            balanced_accuracy=float(skm.balanced_accuracy_score(labels, predicted)),
            macro_f1=float(
                skm.f1_score(labels, predicted, labels=classes, average="macro", zero_division=0)
            ),
            auroc=_auroc(labels, probs, ovr=False),
            auroc_ovr=_auroc(labels, probs, ovr=True),
        )


def class_report(labels: np.ndarray, predicted: np.ndarray, class_names: list[str]) -> dict:
    """Per-class precision, recall and support and the confusion matrix (rows: true class,
    columns: predicted), JSON-ready, in the order of ``class_names``."""
    classes = list(range(len(class_names)))
    precision, recall, _, support = skm.precision_recall_fscore_support(
        labels, predicted, labels=classes, zero_division=0
    )
    matrix = skm.confusion_matrix(labels, predicted, labels=classes)
    report: dict[str, Any] = {
        "classes": list(class_names),
        "precision": [round(float(p), 4) for p in precision],
        "recall": [round(float(r), 4) for r in recall],
        "support": [int(s) for s in support],
        "confusion_matrix": matrix.astype(int).tolist(),
    }
    return report
