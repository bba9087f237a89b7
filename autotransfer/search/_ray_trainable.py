"""The Ray Tune trainable: one trial on a Ray worker, reported to Tune after every epoch.

A trial gets the search plan as JSON (a few kilobytes: the search space travels as values,
so no node reads a file the driver had, nor prepares the search again) and loads the dataset
itself, once per worker process, checked against the plan's fingerprint. Each node reuses
frozen-prefix features through its own feature cache.
Trials never touch the Optuna storage: they report epochs (``EpochReport``) and, with the
last, the trial's end (``TrialEnd``), and the driver's searcher hands both to the engine.
"""

from __future__ import annotations

import functools
import traceback
from pathlib import Path
from typing import Any

import torch

from autotransfer.cache import FeatureCache
from autotransfer.data import TransferDataset
from autotransfer.search._prepared import plan_from_json
from autotransfer.search._trial import EpochReport, TrialEnd, this_worker, train
from autotransfer.search._worker_report import failure, where

METRIC = "val_score"  # what the scheduler compares after each epoch (an EpochReport field)
TIME_ATTR = "epoch"  # the scheduler's unit of progress (an EpochReport field)
# beside the sampled parameters in a trial's config: where to save its weights (a folder
# the driver shares, see search/_model.py)
WEIGHTS_KEY = "autotransfer_weights_to"


@functools.lru_cache(maxsize=2)
def _dataset(plan_json: str) -> TransferDataset:
    """The study's dataset, loaded once per worker process exactly as ``prepare`` loaded it
    (checked against the plan's fingerprint)."""
    return plan_from_json(plan_json).load_dataset()


@functools.lru_cache(maxsize=2)
def _feature_cache(plan_json: str) -> FeatureCache | None:
    """This node's frozen-feature cache, one per worker process: ``cache_dir`` when the
    request names one (that path on every node), else the node's default folder
    (``$AUTOTRANSFER_CACHE_DIR`` or ``~/.cache/autotransfer/features``) — never the folder
    beside the driver's storage file, which other nodes may not have."""
    request = plan_from_json(plan_json).request
    return request.feature_cache(request.cache_dir)


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def run_trial(config: dict[str, Any], *, plan_json: str, cpus: float) -> None:
    """Train one configuration; ``config`` holds the engine's sampled parameters."""
    from ray import tune

    plan = plan_from_json(plan_json)
    params = {key: value for key, value in config.items() if key != WEIGHTS_KEY}
    weights = Path(config[WEIGHTS_KEY]) if WEIGHTS_KEY in config else None
    torch.set_num_threads(max(1, int(cpus)))
    ran_on = where(this_worker(), _node_id())
    last: dict[str, Any] = {**ran_on, METRIC: 0.0, TIME_ATTR: 0}
    try:
        dataset = _dataset(plan_json)
        trial = plan.trial_config(params)
        reports: list[EpochReport] = []

        def report(epoch: EpochReport) -> None:
            nonlocal last
            reports.append(epoch)
            last = {**ran_on, **epoch.to_dict()}
            if epoch.epoch == trial.epochs:  # the last epoch: this report also ends the trial
                last.update(TrialEnd.from_reports(reports).to_dict())
            tune.report(dict(last))

        cache = _feature_cache(plan_json)
        end = train(trial, dataset, cache=cache, on_epoch=report, weights_to=weights)
        if TrialEnd.from_dict(last) is None:  # fewer epochs than configured: report the end now
            tune.report({**last, **end.to_dict()})
    except Exception as exc:
        # the searcher records this report as the trial's error; raising also shows it in Ray
        failed = failure(f"{type(exc).__name__}: {exc}", traceback.format_exc())
        tune.report({**last, **failed})
        raise
