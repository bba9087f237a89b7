"""Optimizers over named groups and the warm-up + cosine schedule."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR

from autotransfer.finetune._config import TrialConfig


def make_optimizer(groups: list[dict[str, Any]], config: TrialConfig) -> torch.optim.Optimizer:
    """SGD (momentum, optional Nesterov) or AdamW; every group keeps its own ``lr``."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            groups,
            lr=config.base_lr,
            momentum=config.momentum,
            nesterov=config.nesterov and config.momentum > 0,
        )
    return torch.optim.AdamW(groups, lr=config.base_lr)


def warmup_cosine(step: int, total_steps: int, warmup_steps: int) -> float:
    """LR factor at ``step``: linear from 1/warmup to 1, then cosine from 1 to 0.

    1. during warm-up the factor climbs linearly, reaching 1 at the end of warm-up;
    2. afterwards it follows half a cosine, reaching 0 at ``total_steps``.

    >>> [round(warmup_cosine(s, 10, 2), 3) for s in (0, 1, 2, 6, 10)]
    [0.5, 1.0, 1.0, 0.5, 0.0]
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(
    optimizer: torch.optim.Optimizer, *, total_steps: int, warmup_steps: int
) -> LambdaLR:
    """A stock LambdaLR: it scales each group's own initial ``lr``, keeping layer-wise ratios."""
    return LambdaLR(optimizer, lambda step: warmup_cosine(step, total_steps, warmup_steps))
