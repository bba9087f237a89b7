"""One trial, as every executor trains it: its configuration, its reports and its end."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from autotransfer.backbones import Backbone
from autotransfer.cache import FeatureCache
from autotransfer.data import TransferDataset
from autotransfer.finetune import EpochMetrics, TrialConfig, TrialResult, fit, ranked


class TrialCancelled(Exception):
    """Stops a trial at the end of an epoch before its last when the search is cancelled; it
    is recorded FAIL with this reason, so a resumed study runs it again. A trial whose last
    epoch is done completes normally."""

    def __init__(self, epoch: int) -> None:
        super().__init__(f"cancelled after epoch {epoch}")
        self.epoch = epoch


def this_worker() -> str:
    """``host:pid`` of the process training a trial."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class EpochReport:
    """What a trial tells the engine after each epoch (a dict on the wire to a Ray driver).

    ``val_score`` is the study's metric (the space's ``objective``), the value the pruner
    and the decision judge; it equals ``val_accuracy`` for the metric ``accuracy``.
    """

    epoch: int
    val_accuracy: float
    elapsed_s: float
    trainable_parameters: int
    val_score: float
    class_report: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The report on the wire (the class report travels with the trial's end only)."""
        values = asdict(self)
        values.pop("class_report")
        return values

    @classmethod
    def of(cls, m: EpochMetrics) -> EpochReport:
        return cls(
            m.epoch,
            m.val_accuracy,
            m.elapsed_s,
            m.trainable_parameters,
            val_score=m.val_score,
            class_report=m.class_report or None,
        )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EpochReport:
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})


@dataclass(frozen=True)
class TrialEnd:
    """How a trial that ran all its epochs ended: its best epoch's score is its value.

    ``best_val_score`` is the study's metric at the best epoch (the one it picked): the
    trial's value. ``class_report`` holds that epoch's per-class figures.
    """

    best_val_accuracy: float
    best_epoch: int
    final_val_accuracy: float
    train_time_s: float
    best_val_score: float
    class_report: dict[str, Any] | None = None

    @classmethod
    def of(cls, r: TrialResult) -> TrialEnd:
        return cls(
            r.best_val_accuracy,
            r.best_epoch,
            r.final_val_accuracy,
            r.train_time_s,
            best_val_score=r.best_val_score,
            class_report=r.class_report or None,
        )

    @classmethod
    def from_reports(cls, reports: list[EpochReport]) -> TrialEnd:
        """The end of a trial whose last report is ``reports[-1]`` (best: the first best)."""
        best = max(reports, key=lambda r: ranked(r.val_score))  # as the trainer ranks epochs
        last = reports[-1]
        return cls(
            best.val_accuracy,
            best.epoch,
            last.val_accuracy,
            last.elapsed_s,
            best_val_score=best.val_score,
            class_report=best.class_report,
        )

    def to_dict(self) -> dict[str, Any]:
        """The end on the wire; the class report as JSON text, so that Tune's loggers keep
        it as one value instead of flattening its lists."""
        values = asdict(self)
        values["class_report"] = json.dumps(self.class_report) if self.class_report else None
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrialEnd | None:
        """The end in a report, or None when the report is not a trial's last."""
        required = [f.name for f in fields(cls) if f.default is MISSING]
        if not all(name in values for name in required):
            return None
        found = {f.name: values[f.name] for f in fields(cls) if f.name in values}
        if isinstance(found.get("class_report"), str):
            found["class_report"] = json.loads(found["class_report"])
        return cls(**found)


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
