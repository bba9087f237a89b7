"""Fine-tuning: parameter groups, optimizers, schedules, regularizers and the trial loop."""

from __future__ import annotations

from autotransfer.finetune._config import TrialConfig
from autotransfer.finetune._device import Precision, resolve_device
from autotransfer.finetune._feeds import Feed, bypass_reason
from autotransfer.finetune._optim import make_optimizer, make_scheduler, warmup_cosine
from autotransfer.finetune._param_groups import describe_groups, group_name, param_groups
from autotransfer.finetune._regularizers import L2SP
from autotransfer.finetune._result import EpochMetrics, TrialResult
from autotransfer.finetune._trainer import (
    Reporter,
    fit,
    make_feed,
    seed_everything,
    train_trial,
)

__all__ = [
    "L2SP",
    "EpochMetrics",
    "Feed",
    "Precision",
    "Reporter",
    "TrialConfig",
    "TrialResult",
    "bypass_reason",
    "describe_groups",
    "fit",
    "group_name",
    "make_feed",
    "make_optimizer",
    "make_scheduler",
    "param_groups",
    "resolve_device",
    "seed_everything",
    "train_trial",
    "warmup_cosine",
]
