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

With ``--repeats N`` every method runs N times with seeds 0…N−1 (sampler, training and
recommender seeds; the data split stays seed 0, the oracle's), and the summary compares
medians: one lucky draw of a random search can land on the target in its first trial.

    python benchmarks/search_efficiency.py --quick                  # digits, 150 s per method
    python benchmarks/search_efficiency.py --tasks digits fmnist-1k --budget 240 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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
    seed: int
    trials: int
    pruned: int
    picked_params: dict[str, Any]
    picked_accuracy: float
    regret: float
    time_to_target_s: float | None
    wall_s: float
    one_run_s: float
    search_cost: float
    budget_s: float | None = None  # the wall-clock budget the method was given


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


def _request(
    task: Task, storage: str, name: str, budget_s: float, seed: int, **extra: Any
) -> SearchRequest:
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
            "seed": seed,
            "split_seed": 0,  # the oracle's split, whatever the method's seed
            "storage": storage,
            "study_name": name,
            "input_size": INPUT_SIZE,
            "device": "cpu",
            **extra,
        }
    )


AUTOTRANSFER_WORKERS = 1  # --autotransfer-workers: worker processes, cores split between them


def run_autotransfer(
    task: Task, storage: str, budget_s: float, seed: int
) -> tuple[optuna.Study, dict]:
    request = _request(
        task,
        storage,
        "autotransfer",
        budget_s,
        seed,
        recommend=True,
        cache=True,
        workers=AUTOTRANSFER_WORKERS,
    )
    study = run_search(request)
    decision = decide(study)
    assert decision is not None, "autotransfer completed no trial within the budget"
    trial = study.trials[decision.chosen_trial]
    return study, {"params": trial.params, "accuracy": decision.chosen_accuracy}


def run_ray(task: Task, storage: str, budget_s: float, seed: int) -> tuple[optuna.Study, dict]:
    request = _request(
        task, storage, "ray", budget_s, seed, recommend=False, cache=False, backend="ray"
    )
    study = run_search(request, seeds=[])
    best = study.best_trial
    return study, {"params": best.params, "accuracy": best.value}


def run_plain_optuna(
    task: Task, storage: str, budget_s: float, seed: int
) -> tuple[optuna.Study, dict]:
    """What an engineer writes by hand: TPE, full epochs per trial, no pruning, no cache."""
    spec = load_spec("default")
    dataset = task.load()
    from autotransfer.backbones import num_blocks

    n = num_blocks(BACKBONE)
    study = optuna.create_study(
        storage=storage,
        study_name="plain-optuna",
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
    )

    def objective(trial: optuna.Trial) -> float:
        config = _config(task, suggest(trial, spec, n), seed)
        return train_trial(config, dataset).best_val_accuracy

    study.optimize(objective, timeout=budget_s)
    return study, {"params": study.best_trial.params, "accuracy": study.best_value}


def _config(task: Task, params: dict[str, Any], seed: int) -> TrialConfig:
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
        seed=seed,
        device="cpu",
    )


def one_run_seconds(task: Task, params: dict[str, Any], seed: int) -> float:
    """Wall time of one uncached training run of a picked configuration."""
    config = _config(task, params, seed)
    dataset = task.load()
    start = time.perf_counter()
    train_trial(config, dataset)
    return time.perf_counter() - start


METHODS: dict[str, Callable[[Task, str, float, int], tuple[optuna.Study, dict]]] = {
    "autotransfer": run_autotransfer,
    "plain optuna": run_plain_optuna,
    "ray tune asha": run_ray,
}


def measure(
    task: Task, method: str, budget_s: float, oracle_best: float, seed: int
) -> MethodResult:
    with tempfile.TemporaryDirectory() as tmp:
        storage = f"sqlite:///{tmp}/study.db"
        start = time.time()
        study, picked = METHODS[method](task, storage, budget_s, seed)
        wall = time.time() - start
        rows = _finish_times(study, start)
        states = [t.state for t in study.get_trials(deepcopy=False)]
    one_run = one_run_seconds(task, picked["params"], seed)
    return MethodResult(
        method=method,
        seed=seed,
        trials=len(rows),
        pruned=states.count(optuna.trial.TrialState.PRUNED),
        picked_params=picked["params"],
        picked_accuracy=picked["accuracy"],
        regret=oracle_best - picked["accuracy"],
        time_to_target_s=_time_to_target(rows, oracle_best - TARGET_POINTS),
        wall_s=wall,
        one_run_s=one_run,
        search_cost=wall / one_run,
        budget_s=budget_s,
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
        seed=0,
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


def _fmt(x: float | None) -> str:
    return f"{x:.0f}" if x is not None else "not reached"


def _median_time(runs: list[MethodResult], budget_s: float) -> tuple[float, bool]:
    """Median time to target, and whether it is only a lower bound.

    A run that never reached the target took *at least* its budget: that budget stands in
    for its time. The median of these lower bounds bounds the true median from below, and
    is exact when the run in the middle reached the target.
    """
    times = sorted(
        (r.time_to_target_s, False)
        if r.time_to_target_s is not None
        else (r.budget_s or budget_s, True)
        for r in runs
    )
    middle = times[(len(times) - 1) // 2 : len(times) // 2 + 1]
    value = statistics.mean(t for t, _ in middle)
    return value, any(censored for _, censored in middle)


def summary(rows: list[MethodResult], budget_s: float) -> list[str]:
    """Medians over the seeds per method, and autotransfer's median ÷ each other method's."""
    methods = [m for m in dict.fromkeys(r.method for r in rows) if m != "oracle grid"]
    by_method = {m: [r for r in rows if r.method == m] for m in methods}
    lines = [
        "",
        "| method | runs reaching target | median time to target s | median regret "
        "| median search cost |",
        "|---|---:|---:|---:|---:|",
    ]
    for m, runs in by_method.items():
        ttt, censored = _median_time(runs, budget_s)
        reached = sum(r.time_to_target_s is not None for r in runs)
        lines.append(
            f"| {m} | {reached}/{len(runs)} | {'≥ ' if censored else ''}{ttt:.0f} | "
            f"{statistics.median(r.regret for r in runs):+.4f} | "
            f"{statistics.median(r.search_cost for r in runs):.1f} |"
        )
    ours = by_method.get("autotransfer")
    if ours is None:
        return lines
    mine, mine_censored = _median_time(ours, budget_s)
    lines.append("")
    for m, runs in by_method.items():
        if m == "autotransfer":
            continue
        other, censored = _median_time(runs, budget_s)
        if mine_censored:
            text = "autotransfer's median run did not reach the target"
        elif censored:  # the other's median is only bounded from below: the ratio from above
            text = (
                f"< {mine / other:.2f} (its median run had not reached the target at {other:.0f} s)"
            )
        else:
            text = f"{mine / other:.2f}"
        lines.append(f"- autotransfer median time to target ÷ {m}'s: {text}")
    return lines


def table(task: str, oracle_best: float, rows: list[MethodResult], budget_s: float) -> str:
    lines = [
        f"### {task} (oracle best {oracle_best:.4f}, target {oracle_best - TARGET_POINTS:.4f})",
        "",
        "| method | seed | budget s | trials (pruned) | picked k | picked acc | regret "
        "| time to target s | wall s | search cost |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.method} | {r.seed} | {_fmt(r.budget_s) if r.budget_s else '-'} | "
            f"{r.trials} ({r.pruned}) | "
            f"{r.picked_params.get('freeze_depth')} | {r.picked_accuracy:.4f} | "
            f"{r.regret:+.4f} | {_fmt(r.time_to_target_s)} | {r.wall_s:.0f} | "
            f"{r.search_cost:.1f} |"
        )
    lines += summary(rows, budget_s)
    return "\n".join(lines) + "\n"


def included(spec: str, task: str) -> list[MethodResult]:
    """Rows of ``task`` from an earlier run's JSON (``PATH`` or ``PATH@SECONDS``)."""
    path, _, seconds = spec.partition("@")
    budget = float(seconds) if seconds else None
    return [
        MethodResult(**{"budget_s": budget, **row})
        for row in json.loads(Path(path).read_text()).get(task, [])
        if row["method"] != "oracle grid"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="digits only, 150 s per method")
    parser.add_argument("--tasks", nargs="+", default=["digits", "fmnist-1k", "fmnist-20k"])
    parser.add_argument("--budget", type=float, default=600.0, help="seconds per method")
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    parser.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="JSON[@SECONDS]",
        help="a results .json of an earlier run whose rows join this run's tables and medians "
        "(e.g. baselines given a longer budget), @ the budget it ran with where its rows do "
        "not say; with --methods and nothing else, only merges",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "search_efficiency")
    parser.add_argument(
        "--autotransfer-workers", type=int, default=1, help="worker processes for method (a)"
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs per method, seeds 0…N−1")
    args = parser.parse_args()
    global AUTOTRANSFER_WORKERS
    AUTOTRANSFER_WORKERS = args.autotransfer_workers
    if args.quick:
        args.tasks, args.budget = ["digits"], 150.0
    torch.set_num_threads(os.cpu_count() or 1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    report = [
        f"## Search efficiency at equal wall-clock budget ({args.budget:.0f} s per method"
        + (", merged with earlier runs: see each row's budget" if args.include else "")
        + ")\n",
        header(),
    ]
    raw: dict[str, Any] = {}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.tasks:
        task = TASKS[name]
        grid = load_oracle(name)
        oracle_best = best_cell(grid)["best"]
        rows = [row for spec in args.include for row in included(spec, name)]
        # the same method and seed in several files: the run with the longest budget counts
        longest: dict[tuple[str, int], MethodResult] = {}
        for row in rows:
            key = (row.method, row.seed)
            if key not in longest or (row.budget_s or 0) > (longest[key].budget_s or 0):
                longest[key] = row
        rows = list(longest.values())
        for seed in range(args.repeats):
            for method in args.methods:  # interleaved, so drift in machine load hits all alike
                print(f"{name}: {method}, seed {seed}, for {args.budget:.0f} s …", flush=True)
                rows.append(measure(task, method, args.budget, oracle_best, seed))
                print(f"  {asdict(rows[-1])}", flush=True)
                raw[name] = [asdict(r) for r in rows]  # after every run: a stopped run keeps
                args.out.with_suffix(".json").write_text(json.dumps(raw, indent=1))  # its rows
        rows.append(oracle_row(grid))
        text = table(name, oracle_best, rows, args.budget)
        print(text, flush=True)
        report.append(text)
        raw[name] = [asdict(r) for r in rows]
    args.out.with_suffix(".md").write_text("\n".join(report))
    args.out.with_suffix(".json").write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
