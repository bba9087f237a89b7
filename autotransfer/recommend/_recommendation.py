"""What a recommender returns: one configuration, its neighbours, and why."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from autotransfer.recommend._rules import PEAK_DEPTH, REFERENCE_BATCH, head_lr_mult


@dataclass(frozen=True)
class Recommendation:
    """A recommended fine-tuning configuration with the measurements and reasons behind it.

    Field names that are also :class:`~autotransfer.finetune.TrialConfig` fields
    (``freeze_depth``, ``base_lr``, ``head_lr_mult``, ``optimizer``, ``momentum``,
    ``nesterov``, ``weight_decay``, ``epochs``, ``lp_ft_epochs``) mean the same thing there.
    Every entry of ``reasons`` cites the measured number that triggered it.
    """

    backbone: str
    weights: str
    dataset: str
    num_blocks: int
    input_size: int
    budget: str
    strategy: str
    freeze_depth: int
    base_lr: float
    head_lr_mult: float
    optimizer: str
    momentum: float
    nesterov: bool
    weight_decay: float
    epochs: int
    lp_ft_epochs: int
    similarity: float
    size_class: str
    rule: str
    signals: dict[str, Any]
    profile: dict[str, Any]
    reasons: list[str] = field(default_factory=list)
    search_range: dict[str, list[float]] = field(default_factory=dict)
    batch_size: int = REFERENCE_BATCH  # the batch the learning rates are for (they scale with it)
    # skewed classes (``Thresholds.skewed``): how to train on them (the balanced sampler; a
    # weighted loss where a caller asks for one) and the metric to optimise (the search's own
    # objective is its request's or space's; this is advice, cited in ``reasons``)
    class_weighting: str = "none"
    balanced_sampler: bool = False
    metric: str = "accuracy"

    def config_params(self) -> dict[str, Any]:
        """The recommended configuration as ``TrialConfig`` keyword arguments."""
        return {
            "freeze_depth": self.freeze_depth,
            "base_lr": self.base_lr,
            "head_lr_mult": self.head_lr_mult,
            "optimizer": self.optimizer,
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
            "epochs": self.epochs,
            "lp_ft_epochs": self.lp_ft_epochs,
            "class_weighting": self.class_weighting,
            "balanced_sampler": self.balanced_sampler,
        }

    def seed_params(self) -> list[dict[str, Any]]:
        """The recommended configuration first, then its neighbours, without duplicates.

        Neighbours: first the depth neighbour on the side of ``PEAK_DEPTH`` (one block
        shallower from above it, one deeper from below or at it), then the base LR ×3 and
        ÷3, then the other depth neighbour, where the backbone has them. Every oracle grid
        here rises to about two thirds of the blocks and flattens or drops beyond, so from
        below the peak the deeper neighbour is the one likely to beat the recommendation,
        and from above it the shallower one is likely as accurate and, being cheaper,
        becomes the decision. A search that can afford one more full run after the
        recommendation (the packaged spaces' budget) thus tries the neighbour most likely
        to change its decision. The LR neighbours rescale the head's multiplier so the head
        keeps its LR (the rules put it at the pretraining LR). A neighbour at k = 0 drops
        LP-FT, which needs something to fine-tune after the linear probe.
        """
        base = self.config_params()
        head_lr = self.base_lr * self.head_lr_mult

        def depth(k: int) -> list[dict[str, Any]]:
            if not 0 <= k <= self.num_blocks:
                return []
            return [{**base, "freeze_depth": k, **({"lp_ft_epochs": 0} if k == 0 else {})}]

        def rate(factor: float) -> dict[str, Any]:
            lr = round(self.base_lr * factor, 6)
            return {**base, "base_lr": lr, "head_lr_mult": head_lr_mult(lr, head_lr)}

        k = self.freeze_depth
        toward, away = (k - 1, k + 1) if k > PEAK_DEPTH * self.num_blocks else (k + 1, k - 1)
        variants = [base, *depth(toward), rate(3.0), rate(1 / 3), *depth(away)]
        unique: list[dict[str, Any]] = []
        for variant in variants:
            if variant not in unique:
                unique.append(variant)
        return unique

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every field, signals and reasons included, plus the seeds."""
        return {**asdict(self), "seeds": self.seed_params()}
