"""Fine-tuning: parameter groups, optimizers, schedules, regularizers and the trial loop."""

from __future__ import annotations

from autotransfer.finetune._config import TrialConfig
from autotransfer.finetune._device import Precision, resolve_device
from autotransfer.finetune._feeds import Feed, bypass_reason
from autotransfer.finetune._imbalance import WEIGHTINGS, Weighting, class_weights
from autotransfer.finetune._metrics import (
    METRICS,
    Metric,
    Scores,
    check_metric,
    class_report,
    ranked,
    score,
)
from autotransfer.finetune._optim import make_optimizer, make_scheduler, warmup_cosine
from autotransfer.finetune._param_groups import describe_groups, group_name, param_groups
from autotransfer.finetune._regularizers import L2SP
from autotransfer.finetune._result import EpochMetrics, TrialResult
from autotransfer.finetune._trainer import (
    Reporter,
    evaluate,
    fit,
    make_feed,
    seed_everything,
    train_trial,
)

__all__ = [
    "L2SP",
    "METRICS",
    "WEIGHTINGS",
    "EpochMetrics",
    "Feed",
    "Metric",
    "Precision",
    "Reporter",
    "Scores",
    "TrialConfig",
    "TrialResult",
    "Weighting",
    "bypass_reason",
    "check_metric",
    "class_report",
    "class_weights",
    "describe_groups",
    "evaluate",
    "fit",
    "group_name",
    "make_feed",
    "make_optimizer",
    "make_scheduler",
    "param_groups",
    "ranked",
    "resolve_device",
    "score",
    "seed_everything",
    "train_trial",
    "warmup_cosine",
]
