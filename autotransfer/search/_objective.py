"""The trial objective: sample a configuration, train it, report every epoch, record the trial."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

import optuna

from autotransfer.cache import FeatureCache
from autotransfer.data import TransferDataset
from autotransfer.finetune import EpochMetrics, TrialConfig, train_trial
from autotransfer.spec import SearchSpec, suggest

SOURCE_ATTR = "source"


class TrialCancelled(Exception):
    """Raised at the end of an epoch before the last when the study's ``should_stop`` says
    stop (a cancel); the worker records the trial as FAIL with this reason, so a resumed
    study reruns it. A trial whose last epoch is already done completes normally."""


def trial_config(
    spec: SearchSpec,
    params: dict[str, Any],
    *,
    backbone: str,
    weights: str,
    input_size: int,
    seed: int,
    device: str,
) -> TrialConfig:
    """Fixed values, then sampled ones, then the study's own (backbone, epochs, seed…)."""
    values: dict[str, Any] = {**spec.fixed, **params}
    if values.get("lp_ft_epochs") and values.get("freeze_depth", 0) == 0:
        values["lp_ft_epochs"] = 0  # at depth 0 the whole run already is the linear probe
    return TrialConfig(
        **values,
        backbone=backbone,
        weights=weights,
        epochs=spec.budget.max_epochs,
        input_size=input_size,
        seed=seed,
        device=device,
    )


class TrialObjective:
    """Called by a worker with an Optuna trial; returns accuracy (and training seconds).

    Reports validation accuracy after each epoch and raises ``TrialPruned`` when the pruner
    says so. User attributes record what a reviewer needs: backbone, weights, depth in
    blocks, dataset fingerprint, trainable parameters, training time, epochs run and where
    the configuration came from (``recommender`` for enqueued seeds, else ``sampler``).
    """

    def __init__(
        self,
        spec: SearchSpec,
        dataset: TransferDataset,
        *,
        backbone: str,
        weights: str,
        num_blocks: int,
        input_size: int,
        device: str = "auto",
        should_stop: Callable[[], bool] | None = None,
        cache: FeatureCache | None = None,
    ) -> None:
        self.spec = spec
        self.dataset = dataset
        self.backbone = backbone
        self.weights = weights
        self.num_blocks = num_blocks
        self.input_size = input_size
        self.device = device
        self.fingerprint = dataset.fingerprint
        self.should_stop = should_stop
        self.cache = cache  # frozen-prefix features shared by this worker's trials

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        params = suggest(trial, self.spec, self.num_blocks)
        config = trial_config(
            self.spec,
            params,
            backbone=self.backbone,
            weights=self.weights,
            input_size=self.input_size,
            seed=self.spec.budget.seed,
            device=self.device,
        )
        if SOURCE_ATTR not in trial.user_attrs:
            trial.set_user_attr(SOURCE_ATTR, "sampler")
        for key, value in {
            "backbone": self.backbone,
            "weights": self.weights,
            "freeze_depth": config.freeze_depth,
            "num_blocks": self.num_blocks,
            "input_size": self.input_size,
            "dataset_fingerprint": self.fingerprint,
            "worker": f"{socket.gethostname()}:{os.getpid()}",
        }.items():
            trial.set_user_attr(key, value)
        multi = self.spec.budget.objective == "accuracy_and_cost"

        def report(m: EpochMetrics) -> None:
            trial.set_user_attr("epochs_run", m.epoch)
            trial.set_user_attr("train_time_s", round(m.elapsed_s, 3))
            trial.set_user_attr("trainable_parameters", m.trainable_parameters)
            # a cancel or a prune stops the trial at its next epoch boundary; after the last
            # epoch the work is done, so the trial completes instead of being thrown away
            last = m.epoch >= config.epochs
            if not last and self.should_stop is not None and self.should_stop():
                raise TrialCancelled(f"cancelled after epoch {m.epoch}")
            if multi:  # Optuna has no intermediate values for multi-objective studies
                return
            trial.report(m.val_accuracy, m.epoch)
            if not last and trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {m.epoch}: val acc {m.val_accuracy:.4f}")

        result = train_trial(config, self.dataset, cache=self.cache, reporter=report)
        trial.set_user_attr("train_time_s", round(result.train_time_s, 3))
        trial.set_user_attr("best_epoch", result.best_epoch)
        trial.set_user_attr("final_val_accuracy", result.final_val_accuracy)
        if multi:
            return result.best_val_accuracy, result.train_time_s
        return result.best_val_accuracy
