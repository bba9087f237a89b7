"""What a trial reports after each epoch and returns at the end."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int  # 1-based
    phase: Literal["lp", "ft"]  # linear probe (head only) or fine-tuning at the chosen depth
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    lr_head: float
    elapsed_s: float
    trainable_parameters: int
    # the config's ``metric`` on the validation split (``val_accuracy`` for accuracy), and
    # every metric of ``_metrics.METRICS`` (an undefined AUROC is None)
    val_score: float = float("nan")
    val_metrics: dict[str, float | None] = field(default_factory=dict)
    # per-class precision, recall, support and the confusion matrix (``_metrics.class_report``)
    class_report: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrialResult:
    best_val_accuracy: float
    final_val_accuracy: float
    best_epoch: int
    final_val_loss: float
    train_time_s: float
    trainable_parameters: int
    total_parameters: int
    freeze_depth: int
    num_blocks: int
    epochs_run: int
    device: str
    history: list[EpochMetrics] = field(default_factory=list)
    metric: str = "accuracy"
    best_val_score: float = float("nan")  # the metric at the best epoch (which it chose)
    # per-class precision, recall, support and the confusion matrix at the best epoch
    class_report: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
