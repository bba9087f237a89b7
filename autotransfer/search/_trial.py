"""One trial, as every executor trains it: its configuration, its reports and its end."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from autotransfer.backbones import Backbone
from autotransfer.cache import FeatureCache
from autotransfer.data import TransferDataset
from autotransfer.finetune import EpochMetrics, TrialConfig, TrialResult, fit
from autotransfer.spec import SearchSpec


class TrialCancelled(Exception):
    """Stops a trial at the end of an epoch before its last when the search is cancelled; it
    is recorded FAIL with this reason, so a resumed study runs it again. A trial whose last
    epoch is done completes normally."""

    def __init__(self, epoch: int) -> None:
        super().__init__(f"cancelled after epoch {epoch}")
        self.epoch = epoch


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


def this_worker() -> str:
    """``host:pid`` of the process training a trial."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class EpochReport:
    """What a trial tells the engine after each epoch (a dict on the wire to a Ray driver)."""

    epoch: int
    val_accuracy: float
    elapsed_s: float
    trainable_parameters: int

    @classmethod
    def of(cls, m: EpochMetrics) -> EpochReport:
        return cls(m.epoch, m.val_accuracy, m.elapsed_s, m.trainable_parameters)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EpochReport:
        return cls(**{f.name: values[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class TrialEnd:
    """How a trial that ran all its epochs ended: its best epoch's accuracy is its value."""

    best_val_accuracy: float
    best_epoch: int
    final_val_accuracy: float
    train_time_s: float

    @classmethod
    def of(cls, r: TrialResult) -> TrialEnd:
        return cls(r.best_val_accuracy, r.best_epoch, r.final_val_accuracy, r.train_time_s)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrialEnd | None:
        """The end in a report, or None when the report is not a trial's last."""
        names = [f.name for f in fields(cls)]
        if not all(name in values for name in names):
            return None
        return cls(**{name: values[name] for name in names})


def train(
    config: TrialConfig,
    dataset: TransferDataset,
    *,
    cache: FeatureCache | None,
    on_epoch: Callable[[EpochReport], None],
    weights_to: Path | None = None,
) -> TrialEnd:
    """Train one configuration, calling ``on_epoch`` after each epoch (it may raise to stop).

    ``weights_to``: where to save the network's state dict after its best epoch (the one
    the trial's value measures), for the engine to keep if the trial is chosen.
    """

    def save(backbone: Backbone) -> None:
        assert weights_to is not None
        weights_to.parent.mkdir(parents=True, exist_ok=True)
        partial = weights_to.with_name(weights_to.name + ".partial")
        torch.save(backbone.model.state_dict(), partial)
        partial.replace(weights_to)  # never a half-written file under the final name

    result, _ = fit(
        config,
        dataset,
        cache=cache,
        reporter=lambda m: on_epoch(EpochReport.of(m)),
        keep_best=weights_to is not None,
        on_trained=save if weights_to is not None else None,
    )
    return TrialEnd.of(result)
