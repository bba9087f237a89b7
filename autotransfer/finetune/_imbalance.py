"""Class-weighted loss for skewed training data.

With ``inverse`` weights every class contributes the same total weight to the loss, however
many images it has (weight ∝ 1 / count); ``sqrt_inverse`` goes half way on a log scale
(∝ 1 / √count), a common compromise when the rare classes are very rare and their few
images would otherwise dominate. Weights are scaled so that the mean weight over the
training images is 1: the loss keeps its magnitude, and the learning rates their meaning.
A class-balanced sampler (``data.balanced_sampler``) is the other remedy: it changes which
images a batch holds rather than how much each counts.

>>> labels = torch.tensor([0] * 8 + [1] * 2)
>>> w = class_weights(labels, 2, "inverse")
>>> [round(float(v), 3) for v in w], float((w[labels]).mean())
([0.625, 2.5], 1.0)
>>> float(w[0] * 8), float(w[1] * 2)  # each class's total weight is the same
(5.0, 5.0)
>>> class_weights(labels, 2, "none") is None
True
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor

Weighting = Literal["none", "inverse", "sqrt_inverse"]
WEIGHTINGS: tuple[str, ...] = get_args(Weighting)


def class_weights(labels: Tensor, num_classes: int, weighting: str) -> Tensor | None:
    """Per-class loss weights for ``F.cross_entropy(weight=…)``, None for ``none``."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"class_weighting must be one of {WEIGHTINGS}, but got {weighting=}.")
    if weighting == "none":
        return None
    counts = torch.bincount(labels.long(), minlength=num_classes).double()
    # a class absent from training gets the largest weight any present class has: it
    # cannot be learnt from the loss, but it must not divide by zero either
    raw = torch.where(counts > 0, 1.0 / counts.clamp(min=1), torch.zeros_like(counts))
    if weighting == "sqrt_inverse":
        raw = raw.sqrt()
    raw = torch.where(counts > 0, raw, raw.max())
    mean = float((raw * counts).sum() / counts.sum())
    return (raw / mean).float()
