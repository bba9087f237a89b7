"""The Ray Tune trainable: one trial on a Ray worker, reported to Tune after every epoch.

Workers get the request (names and paths, a few hundred bytes) and load the dataset
themselves, once per worker process; nothing is pickled per trial. Each node reuses
frozen-prefix features through its own feature cache. Trials never touch the Optuna storage:
the driver's searcher turns their reports into the trial's intermediate values, user
attributes and final state, so a worker node needs no database access.
"""

from __future__ import annotations

import functools
import os
import socket
import traceback
from typing import Any

import torch

from autotransfer.cache import FeatureCache, make_cache
from autotransfer.data import TransferDataset, load_dataset
from autotransfer.finetune import EpochMetrics, train_trial
from autotransfer.search._objective import trial_config
from autotransfer.search._request import SearchRequest

METRIC = "val_accuracy"  # what the scheduler compares after each epoch
TIME_ATTR = "epoch"
OBJECTIVE = "objective"  # only in a trial's last report: it ran every epoch
COST = "cost_s"  # training seconds, the second objective of accuracy_and_cost
ERROR = "error"  # only in the report a failing trial sends before it raises

# Keys of a report that become the Optuna trial's user attributes, as in the Optuna backend
# (plus where the trial ran: ray_node is the Ray node id).
USER_ATTRS = (
    "backbone",
    "weights",
    "freeze_depth",
    "num_blocks",
    "input_size",
    "dataset_fingerprint",
    "worker",
    "ray_node",
    "epochs_run",
    "train_time_s",
    "trainable_parameters",
    "best_epoch",
    "final_val_accuracy",
    "error",
    "traceback",
)


@functools.lru_cache(maxsize=2)
def _dataset(request_json: str) -> TransferDataset:
    """The study's dataset, loaded once per worker process exactly as ``prepare`` loads it."""
    request = SearchRequest.model_validate_json(request_json)
    return load_dataset(
        request.dataset,
        val_fraction=request.val_fraction,
        seed=request.resolved_split_seed(),
        max_train=request.max_train,
        max_val=request.max_val,
        on_corrupt=request.on_corrupt,
    )


@functools.lru_cache(maxsize=2)
def _feature_cache(enabled: bool, directory: str | None) -> FeatureCache | None:
    """This node's frozen-feature cache, one per worker process: ``cache_dir`` when the
    request names one (that path on every node), else the node's default folder
    (``$AUTOTRANSFER_CACHE_DIR`` or ``~/.cache/autotransfer/features``) — never the folder
    beside the driver's storage file, which other nodes may not have."""
    return make_cache(enabled, directory)


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def run_trial(
    config: dict[str, Any],
    *,
    request_json: str,
    fingerprint: str,
    num_blocks: int,
    input_size: int,
    cpus: float,
) -> None:
    """Train one sampled configuration; ``config`` holds the searched parameters only."""
    from ray import tune

    request = SearchRequest.model_validate_json(request_json)
    spec = request.resolved_spec()
    torch.set_num_threads(max(1, int(cpus)))
    last: dict[str, Any] = {METRIC: 0.0, TIME_ATTR: 0}
    try:
        dataset = _dataset(request_json)
        if dataset.fingerprint != fingerprint:
            raise RuntimeError(
                f"node {socket.gethostname()} sees other data for {request.dataset!r} "
                f"(fingerprint {dataset.fingerprint}, the study has {fingerprint}); give every "
                f"node the same files at the same path"
            )
        trial = trial_config(
            spec,
            dict(config),
            backbone=request.backbone,
            weights=request.weights,
            input_size=input_size,
            seed=spec.budget.seed,
            device=request.device,
        )
        static = {
            "backbone": request.backbone,
            "weights": request.weights,
            "freeze_depth": trial.freeze_depth,
            "num_blocks": num_blocks,
            "input_size": input_size,
            "dataset_fingerprint": fingerprint,
            "worker": f"{socket.gethostname()}:{os.getpid()}",
            "ray_node": _node_id(),
        }
        best: EpochMetrics | None = None

        def report(m: EpochMetrics) -> None:
            nonlocal best, last
            if best is None or m.val_accuracy > best.val_accuracy:
                best = m
            last = {
                **static,
                METRIC: m.val_accuracy,
                TIME_ATTR: m.epoch,
                "epochs_run": m.epoch,
                "train_time_s": round(m.elapsed_s, 3),
                "trainable_parameters": m.trainable_parameters,
            }
            if m.epoch == trial.epochs:  # the last epoch: this report also ends the trial
                last.update(
                    {
                        OBJECTIVE: best.val_accuracy,
                        COST: m.elapsed_s,
                        "best_epoch": best.epoch,
                        "final_val_accuracy": m.val_accuracy,
                    }
                )
            tune.report(dict(last))

        cache = _feature_cache(request.cache, request.cache_dir)
        result = train_trial(trial, dataset, reporter=report, cache=cache)
        if OBJECTIVE not in last:  # fewer epochs than configured: report the end now
            tune.report(
                {
                    **last,
                    OBJECTIVE: result.best_val_accuracy,
                    COST: result.train_time_s,
                    "best_epoch": result.best_epoch,
                    "final_val_accuracy": result.final_val_accuracy,
                }
            )
    except Exception as exc:
        # the searcher records this report as the trial's error; raising also shows it in Ray
        tune.report(
            {
                **last,
                ERROR: f"{type(exc).__name__}: {exc}"[:2000],
                "traceback": traceback.format_exc()[-4000:],
            }
        )
        raise
