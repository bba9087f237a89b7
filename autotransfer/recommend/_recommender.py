"""Recommenders: the extension point and the rule-based implementation."""

from __future__ import annotations

import torch

from autotransfer.backbones import create_backbone, suggest_input_size
from autotransfer.data import TransferDataset
from autotransfer.errors import UserInputError
from autotransfer.recommend._recommendation import Recommendation
from autotransfer.recommend._rules import (
    REFERENCE_BATCH,
    TABLE,
    ComputeBudget,
    Rule,
    RuleInputs,
    Thresholds,
    check_budget,
    match_rule,
)
from autotransfer.recommend._signals import draw_sample, measure_signals
from autotransfer.recommend._similarity import bn_similarity, similarity


class RuleBasedRecommender:
    """Measured profile + measured domain similarity + budget, through a table of rules.

    Contract of :meth:`recommend`: the search calls it once per study, before any trial, and
    enqueues ``seed_params()`` of the result as the first trials; the CLI and the HTTP API
    call it directly. It does not train, does not modify ``dataset``, returns the same
    result for the same arguments (``seed`` fixes any sampling), takes seconds on a CPU, and
    explains itself: every reason cites the measured number behind it. Invalid arguments
    raise :class:`~autotransfer.errors.UserInputError`.
    """

    def __init__(self, table: tuple[Rule, ...] = TABLE, thresholds: Thresholds | None = None):
        self.table = table
        self.thresholds = thresholds or Thresholds()

    def recommend(
        self,
        dataset: TransferDataset,
        backbone: str,
        *,
        weights: str = "DEFAULT",
        input_size: int | None = None,
        budget: ComputeBudget = "limited",
        sample_size: int = 256,
        seed: int = 0,
        batch_size: int = REFERENCE_BATCH,
    ) -> Recommendation:
        """The recommended configuration for fine-tuning ``backbone`` on ``dataset``."""
        checked = check_budget(budget)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise UserInputError(
                f"batch_size must be a positive integer (the batch the trials train with; the "
                f"rates are calibrated at {REFERENCE_BATCH}), but got {batch_size=}."
            )
        if not isinstance(sample_size, int) or sample_size < 8:
            raise UserInputError(
                f"sample_size must be an integer >= 8 (a few hundred is typical), but got "
                f"{sample_size=}."
            )
        profile = dataset.profile()
        size = input_size or suggest_input_size(backbone, profile.median_resolution)
        net = create_backbone(
            backbone, num_classes=max(2, profile.num_classes), weights=weights, input_size=size
        )
        images, labels = draw_sample(dataset, sample_size, seed, input_size=size)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            signals = measure_signals(net, images, labels, input_size=size, seed=seed)
        score = similarity(signals)
        outcome = match_rule(
            RuleInputs(
                num_train=profile.num_train,
                samples_per_class_min=profile.samples_per_class_min,
                similarity=score,
                budget=checked,
                num_blocks=net.num_blocks,
                batch_size=batch_size,
            ),
            self.thresholds,
            self.table,
        )
        reasons = list(outcome.reasons)
        measured = f"probe gain {signals.probe_gain:.2f}"
        if signals.bn_shift is not None:
            measured = (
                f"BatchNorm shift {signals.bn_shift:.2f} → {bn_similarity(signals.bn_shift):.2f}, "
                + measured
            )
        reasons[1] += f" ({measured}, on {signals.sample_size} images)"
        counts = sorted(profile.train_class_counts.values())
        majority = counts[-1] / max(profile.num_train, 1)
        ratio = counts[-1] / max(counts[0], 1)
        reasons.append(
            f"frozen top-block features separate the sample's {profile.num_classes} classes "
            f"with {signals.top_probe_accuracy:.2f} accuracy (the class-balanced sample's "
            f"chance level {signals.chance:.2f}, lowest cut {signals.probe_accuracy[0]:.2f})"
        )
        skewed = ratio >= self.thresholds.skewed
        if skewed:
            reasons.append(
                f"skewed classes: the largest has {counts[-1]:,} training images, the smallest "
                f"{counts[0]:,} ({ratio:.1f}×, >= {self.thresholds.skewed:g}×); predicting the "
                f"majority class alone scores {majority:.2f} accuracy, so optimise a balanced "
                f"metric (objective: balanced_accuracy or macro_f1) and draw every class "
                f"equally often (balanced_sampler: true; loss weights by inverse frequency "
                f"scale a rare class's gradient up to {ratio:.0f}× and train less steadily at "
                f"this learning rate)"
            )
        reasons.append("optimizer SGD with Nesterov momentum 0.9: stable for pretrained layers")
        return Recommendation(
            backbone=backbone,
            weights=weights,
            dataset=dataset.name,
            num_blocks=net.num_blocks,
            input_size=size,
            budget=checked,
            strategy=outcome.rule.strategy,
            freeze_depth=outcome.freeze_depth,
            base_lr=outcome.base_lr,
            head_lr_mult=outcome.head_lr_mult,
            optimizer="sgd",
            momentum=0.9,
            nesterov=True,
            weight_decay=1e-4,
            epochs=outcome.epochs,
            lp_ft_epochs=outcome.lp_ft_epochs,
            balanced_sampler=skewed,
            metric="balanced_accuracy" if skewed else "accuracy",
            similarity=score,
            size_class=outcome.size,
            rule=outcome.rule.name,
            signals={**signals.to_dict(), "similarity": score},
            profile={
                "num_train": profile.num_train,
                "num_classes": profile.num_classes,
                "samples_per_class_min": profile.samples_per_class_min,
                "majority_share": round(majority, 4),
                "imbalance_ratio": round(ratio, 2),
                "median_resolution": list(profile.median_resolution),
                "channels": profile.channels,
            },
            reasons=reasons,
            search_range=outcome.search_range,
            batch_size=batch_size,
        )


recommend = RuleBasedRecommender().recommend
"""The rule-based recommendation with the packaged table and thresholds."""
