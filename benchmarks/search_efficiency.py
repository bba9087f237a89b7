"""Search efficiency at equal wall-clock budget: autotransfer vs plain Optuna vs Ray Tune.

Methods (../shared/BENCHMARKS.md), all on EfficientNet-Lite0 at 32×32 over the packaged
``default`` search space, each given the same wall-clock budget in one run on one machine:

(a) autotransfer as shipped: recommender seeds, multivariate TPE, Hyperband, feature cache;
(b) plain Optuna: TPE over the same space, no seeds, no pruning, no cache;
(c) Ray Tune: ASHA with OptunaSearch, no seeds, no cache;
(d) the oracle grid (``benchmarks/oracle.py``), read from its stored JSON.

Per method: the configuration it picks (autotransfer: its decision, the cheapest trial
within 0.5 points of its best; the others: their best trial), its validation accuracy, the
regret against the oracle best, the wall time until a trial within 1 point of the oracle
best finished, and the search cost in units of one (uncached) training run of the picked
configuration, retrained here once per method.

    python benchmarks/search_efficiency.py --quick                  # digits, 150 s per method
    python benchmarks/search_efficiency.py --tasks digits fmnist-1k --budget 600
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from _report import header  # type: ignore[import-not-found]
from _tasks import BACKBONE, INPUT_SIZE, TASKS, Task  # type: ignore[import-not-found]
from oracle import best_cell, load_oracle  # type: ignore[import-not-found]

from autotransfer.finetune import TrialConfig, train_trial
from autotransfer.results import decide
from autotransfer.search import SearchRequest, run_search, trial_config
from autotransfer.spec import load_spec, suggest

TARGET_POINTS = 0.01
RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"


@dataclass
class MethodResult:
    method: str
    trials: int
    pruned: int
    picked_params: dict[str, Any]
    picked_accuracy: float
    regret: float
    time_to_target_s: float | None
    wall_s: float
    one_run_s: float
    search_cost: float


def _finish_times(study: optuna.Study, start: float) -> list[tuple[float, float]]:
    """(seconds since start, best accuracy the trial reached) per finished trial, in order."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.datetime_complete is None or t.state == optuna.trial.TrialState.FAIL:
            continue
        seen = list(t.intermediate_values.values()) + ([t.values[0]] if t.values else [])
        if seen:
            rows.append((t.datetime_complete.timestamp() - start, max(seen)))
    return sorted(rows)


def _time_to_target(rows: list[tuple[float, float]], target: float) -> float | None:
    return next((s for s, acc in rows if acc >= target - 1e-12), None)


def _request(task: Task, storage: str, name: str, budget_s: float, **extra: Any) -> SearchRequest:
    return SearchRequest.model_validate(
        {
            "dataset": task.dataset,
            "max_train": task.max_train,
            "max_val": task.max_val,
            "backbone": BACKBONE,
            "space": "default",
            "trials": 10_000,  # the wall-clock budget decides, not the trial count
            "timeout_s": budget_s,
            "max_epochs": task.oracle_epochs,
            "seed": 0,
            "storage": storage,
            "study_name": name,
            "input_size": INPUT_SIZE,
            "device": "cpu",
            **extra,
        }
    )


AUTOTRANSFER_WORKERS = 1  # --autotransfer-workers: worker processes, cores split between them


def run_autotransfer(task: Task, storage: str, budget_s: float) -> tuple[optuna.Study, dict]:
    request = _request(
        task,
        storage,
        "autotransfer",
        budget_s,
        recommend=True,
        cache=True,
        workers=AUTOTRANSFER_WORKERS,
    )
    study = run_search(request)
    decision = decide(study)
    assert decision is not None, "autotransfer completed no trial within the budget"
    trial = study.trials[decision.chosen_trial]
    return study, {"params": trial.params, "accuracy": decision.chosen_accuracy}


def run_ray(task: Task, storage: str, budget_s: float) -> tuple[optuna.Study, dict]:
    request = _request(task, storage, "ray", budget_s, recommend=False, cache=False, backend="ray")
    study = run_search(request, seeds=[])
    best = study.best_trial
    return study, {"params": best.params, "accuracy": best.value}


def run_plain_optuna(task: Task, storage: str, budget_s: float) -> tuple[optuna.Study, dict]:
    """What an engineer writes by hand: TPE, full epochs per trial, no pruning, no cache."""
    spec = load_spec("default")
    dataset = task.load()
    from autotransfer.backbones import num_blocks

    n = num_blocks(BACKBONE)
    study = optuna.create_study(
        storage=storage,
        study_name="plain-optuna",
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=0),
    )

    def objective(trial: optuna.Trial) -> float:
        return train_trial(_config(task, suggest(trial, spec, n)), dataset).best_val_accuracy

    study.optimize(objective, timeout=budget_s)
    return study, {"params": study.best_trial.params, "accuracy": study.best_value}


def _config(task: Task, params: dict[str, Any]) -> TrialConfig:
    """A sampled configuration at the task's full epoch budget, uncached protocol."""
    spec = load_spec("default")
    spec = spec.model_copy(
        update={"budget": spec.budget.model_copy(update={"max_epochs": task.oracle_epochs})}
    )
    return trial_config(
        spec,
        params,
        backbone=BACKBONE,
        weights="DEFAULT",
        input_size=INPUT_SIZE,
        seed=0,
        device="cpu",
    )


def one_run_seconds(task: Task, params: dict[str, Any]) -> float:
    """Wall time of one uncached training run of a picked configuration."""
    config = _config(task, params)
    dataset = task.load()
    start = time.perf_counter()
    train_trial(config, dataset)
    return time.perf_counter() - start


METHODS: dict[str, Callable[[Task, str, float], tuple[optuna.Study, dict]]] = {
    "autotransfer": run_autotransfer,
    "plain optuna": run_plain_optuna,
    "ray tune asha": run_ray,
}


def measure(task: Task, method: str, budget_s: float, oracle_best: float) -> MethodResult:
    with tempfile.TemporaryDirectory() as tmp:
        storage = f"sqlite:///{tmp}/study.db"
        start = time.time()
        study, picked = METHODS[method](task, storage, budget_s)
        wall = time.time() - start
        rows = _finish_times(study, start)
        states = [t.state for t in study.get_trials(deepcopy=False)]
    one_run = one_run_seconds(task, picked["params"])
    return MethodResult(
        method=method,
        trials=len(rows),
        pruned=states.count(optuna.trial.TrialState.PRUNED),
        picked_params=picked["params"],
        picked_accuracy=picked["accuracy"],
        regret=oracle_best - picked["accuracy"],
        time_to_target_s=_time_to_target(rows, oracle_best - TARGET_POINTS),
        wall_s=wall,
        one_run_s=one_run,
        search_cost=wall / one_run,
    )


def oracle_row(grid: dict[str, Any]) -> MethodResult:
    """The grid as a method: cells in the order the script trains them."""
    top = best_cell(grid)
    elapsed, ttt = 0.0, None
    for cell in grid["cells"]:
        elapsed += cell["seconds"]
        if ttt is None and cell["best"] >= top["best"] - TARGET_POINTS:
            ttt = elapsed
    return MethodResult(
        method="oracle grid",
        trials=len(grid["cells"]),
        pruned=0,
        picked_params={"freeze_depth": top["k"], "base_lr": top["lr"]},
        picked_accuracy=top["best"],
        regret=0.0,
        time_to_target_s=ttt,
        wall_s=elapsed,
        one_run_s=top["seconds"],
        search_cost=elapsed / top["seconds"],
    )


def table(task: str, oracle_best: float, rows: list[MethodResult]) -> str:
    def fmt(x: float | None) -> str:
        return f"{x:.0f}" if x is not None else "not reached"

    lines = [
        f"### {task} (oracle best {oracle_best:.4f})",
        "",
        "| method | trials (pruned) | picked k | picked acc | regret | time to target s "
        "| wall s | search cost |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.method} | {r.trials} ({r.pruned}) | {r.picked_params.get('freeze_depth')} | "
            f"{r.picked_accuracy:.4f} | {r.regret:+.4f} | {fmt(r.time_to_target_s)} | "
            f"{r.wall_s:.0f} | {r.search_cost:.1f} |"
        )
    reference = next((r for r in rows if r.method == "autotransfer"), None)
    for other in rows:
        if reference is None or other is reference or other.method == "oracle grid":
            continue
        if reference.time_to_target_s and other.time_to_target_s:
            ratio = reference.time_to_target_s / other.time_to_target_s
            lines.append(f"\nautotransfer time to target ÷ {other.method}: {ratio:.2f}")
        elif reference.time_to_target_s:
            lines.append(f"\n{other.method} did not reach the target within the budget")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="digits only, 150 s per method")
    parser.add_argument("--tasks", nargs="+", default=["digits", "fmnist-1k", "fmnist-20k"])
    parser.add_argument("--budget", type=float, default=600.0, help="seconds per method")
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--out", type=Path, default=RESULTS / "search_efficiency")
    parser.add_argument(
        "--autotransfer-workers", type=int, default=1, help="worker processes for method (a)"
    )
    args = parser.parse_args()
    global AUTOTRANSFER_WORKERS
    AUTOTRANSFER_WORKERS = args.autotransfer_workers
    if args.quick:
        args.tasks, args.budget = ["digits"], 150.0
    torch.set_num_threads(os.cpu_count() or 1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    report = [
        f"## Search efficiency at equal wall-clock budget ({args.budget:.0f} s per method)\n",
        header(),
    ]
    raw: dict[str, Any] = {}
    for name in args.tasks:
        task = TASKS[name]
        grid = load_oracle(name)
        oracle_best = best_cell(grid)["best"]
        rows = []
        for method in args.methods:
            print(f"{name}: {method} for {args.budget:.0f} s …", flush=True)
            rows.append(measure(task, method, args.budget, oracle_best))
            print(f"  {asdict(rows[-1])}", flush=True)
        rows.append(oracle_row(grid))
        text = table(name, oracle_best, rows)
        print(text, flush=True)
        report.append(text)
        raw[name] = [asdict(r) for r in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text("\n".join(report))
    args.out.with_suffix(".json").write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
