"""Robustness: the self-stopping search from the recommender's start and from wrong ones.

BENCHMARKS.md's robustness figure: the same search (packaged ``default`` space, its procedure
policy, no trial or time budget) started from the recommender's configuration, from feature
extraction (``--start freeze_depth=0,base_lr=0.01``) and from full fine-tuning at LR 0.003
(``--start freeze_depth=17,base_lr=0.003``). Per start and seed: the configuration the search
chose, its regret against the oracle grid's best (``docs/results/oracle-TASK.json``), and the
search cost (wall time ÷ one training run of the chosen configuration, trained alone in the
same run, as ``benchmarks/search_efficiency.py`` measures it). A method is judged by its
worst start.

``--ray`` adds the same search on the Ray backend (a local Ray it starts and stops);
``--plain`` adds what an engineer writes by hand with Optuna, TPE with Hyperband pruning
(report after every epoch, no cache, no warm start), given the same first configuration (the
autotransfer study's first trial, enqueued) and the wall time the autotransfer search took
on the same task, start and seed.

    python benchmarks/robustness.py --tasks digits fmnist-1k --repeats 3
    python benchmarks/robustness.py --tasks digits --starts "feature extraction"
    python benchmarks/robustness.py --tasks digits --starts recommender --ray --plain
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from dataclasses import asdict
from pathlib import Path
from typing import Any

import optuna
import torch
from _report import header  # type: ignore[import-not-found]
from _tasks import TASKS, Task  # type: ignore[import-not-found]
from oracle import best_cell, load_oracle  # type: ignore[import-not-found]
from search_efficiency import (  # type: ignore[import-not-found]
    AUTOTRANSFER_WORKERS,
    METHODS,
    RESULTS,
    MethodResult,
    _decided,
    _request,
    plain_optuna,
)
from search_efficiency import measure as measure_method  # type: ignore[import-not-found]

from autotransfer.search import run_search

STARTS: dict[str, str | None] = {
    "recommender": None,
    "feature extraction": "freeze_depth=0,base_lr=0.01",
    "full fine-tuning at LR 0.003": "freeze_depth=17,base_lr=0.003",
}


FIRST: dict[tuple[str, str, int], dict[str, Any]] = {}  # (task, start, seed): trial #0's params


def _method(start: str | None, *, ray: bool = False) -> Any:
    def run(
        task: Task, storage: str, budget_s: float | None, seed: int
    ) -> tuple[optuna.Study, dict[str, Any]]:
        extra: dict[str, Any] = {"workers": AUTOTRANSFER_WORKERS}
        if ray:  # one trial at a time on all the cores, as the Optuna backend trains it
            extra = {"backend": "ray", "threads": os.cpu_count() or 1}
        if start is not None:
            extra["start"] = start
        study = run_search(_request(task, storage, "robustness", None, seed, **extra))
        FIRST[(task.name, str(start), seed)] = dict(study.trials[0].params)
        return study, _decided(study)

    return run


def _plain(start: str | None) -> Any:
    """TPE + Hyperband by hand, from the same first configuration (see the module doc)."""

    def run(
        task: Task, storage: str, budget_s: float | None, seed: int
    ) -> tuple[optuna.Study, dict[str, Any]]:
        hyperband = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=task.oracle_epochs)
        first = FIRST[(task.name, str(start), seed)]
        return plain_optuna(task, storage, budget_s, seed, pruner=hyperband, first=first)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["digits", "fmnist-1k"])
    parser.add_argument("--starts", nargs="+", default=list(STARTS), choices=list(STARTS))
    parser.add_argument("--repeats", type=int, default=1, help="seeds 0…N−1 per start")
    parser.add_argument("--out", type=Path, default=RESULTS / "robustness")
    parser.add_argument("--ray", action="store_true", help="also the Ray backend")
    parser.add_argument("--plain", action="store_true", help="also plain TPE + Hyperband")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    lines = [
        header(),
        "| task | start | seed | trials | chosen (k, LR) | val acc | regret (pt) | wall s | "
        "one run s | search cost | stop |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows: list[dict[str, Any]] = []
    for name in args.tasks:
        task = TASKS[name]
        best = best_cell(load_oracle(name))["best"]
        for start in args.starts:
            METHODS[start] = _method(STARTS[start])
            METHODS[f"{start} (ray)"] = _method(STARTS[start], ray=True)
            METHODS[f"{start} (plain TPE + Hyperband)"] = _plain(STARTS[start])
            variants = [start] + [f"{start} (ray)"] * args.ray
            for seed in range(args.repeats):
                wall = None
                for method in variants + [f"{start} (plain TPE + Hyperband)"] * args.plain:
                    budget = wall if "plain" in method else None
                    r: MethodResult = measure_method(task, method, budget, best, seed)
                    wall = r.wall_s if method == start else wall
                    rows.append({"task": name, "start": method, **asdict(r)})
                    k, lr = r.picked_params.get("freeze_depth"), r.picked_params.get("base_lr")
                    lines.append(
                        f"| {name} | {method} | {seed} | {r.trials} | {k}, {lr:.3g} | "
                        f"{r.picked_accuracy:.4f} | {100 * r.regret:.2f} | {r.wall_s:.0f} | "
                        f"{r.one_run_s:.1f} | {r.search_cost:.2f} | "
                        f"{(r.stop_reason or '')[:60]} |"
                    )
                    print(lines[-1], flush=True)
    lines += ["", "| task | start | median regret (pt) | median search cost |", "|---|---|---|---|"]
    for name in args.tasks:
        for start in dict.fromkeys(r["start"] for r in rows if r["task"] == name):
            at = [r for r in rows if r["task"] == name and r["start"] == start]
            regret = statistics.median(100 * r["regret"] for r in at)
            cost = statistics.median(r["search_cost"] for r in at)
            lines.append(f"| {name} | {start} | {regret:.2f} | {cost:.2f} |")
    text = "\n".join(lines)
    print(text)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1, default=str))
    args.out.with_suffix(".md").write_text(text + "\n")


if __name__ == "__main__":
    main()
