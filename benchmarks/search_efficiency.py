"""Search cost: the self-stopping search against plain Optuna and Ray Tune at equal wall time.

Methods (../shared/BENCHMARKS.md), all on EfficientNet-Lite0 at 32×32 over the packaged
``default`` search space:

(a) autotransfer as shipped: recommender seeds, the decision pruner, feature cache, and no
    trial or time budget: the search stops when its decision is settled (the packaged space
    leaves the warm start off: ``benchmarks/warm_start.py`` did not earn it a place);
(a') the same search on the Ray backend (a local Ray the search starts);
(b) plain Optuna: TPE over the same space, no seeds, no pruning, no cache, no warm start;
(c) Ray Tune: ASHA with Optuna's sampler, no seeds, no cache, no warm start;
(d) the oracle grid (``benchmarks/oracle.py``), read from its stored JSON.

Methods that cannot stop by themselves (b, c) get the wall time that (a) took in the same
repeat, measured side by side. Per method: the configuration it picks (autotransfer: its
decision, the cheapest trial within 0.5 points of its best; the others: their best trial),
its validation accuracy, the regret against the oracle best, the wall time until a trial
within 1 point of the oracle best finished, and the search cost: total wall time ÷ one
training run of the picked configuration, trained alone here as ``autotransfer train`` would
(same epochs, the feature cache on, starting from an empty cache folder).

With ``--repeats N`` every method runs N times with seeds 0…N−1 (sampler, training and
recommender seeds; the data split stays seed 0, the oracle's), and the summary compares
medians.

    python benchmarks/search_efficiency.py --tasks digits fmnist-1k --repeats 3
    python benchmarks/search_efficiency.py --tasks fmnist-20k --methods autotransfer "plain optuna"
"""

from __future__ import annotations

import argparse
import functools
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

from autotransfer.cache import make_cache
from autotransfer.finetune import EpochMetrics, TrialConfig, train_trial
from autotransfer.record import read_study
from autotransfer.search import SearchPlan, SearchRequest, prepare, run_search, study_decision
from autotransfer.space import load_spec, suggest
from autotransfer.space._budget import HyperbandPruner, NoPruner

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
    stop_reason: str | None = None  # a self-stopping method: why it stopped


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
    task: Task, storage: str, name: str, budget_s: float | None, seed: int, **extra: Any
) -> SearchRequest:
    fields: dict[str, Any] = {
        "dataset": task.dataset,
        "max_train": task.max_train,
        "max_val": task.max_val,
        "backbone": BACKBONE,
        "space": "default",
        "max_epochs": task.oracle_epochs,
        "seed": seed,
        "split_seed": 0,  # the oracle's split, whatever the method's seed
        "storage": storage,
        "study_name": name,
        "input_size": INPUT_SIZE,
        "device": "cpu",
        **extra,
    }
    if budget_s is not None:  # a method that cannot stop: the wall-clock budget decides
        fields.update(trials=10_000, timeout_s=budget_s)
    return SearchRequest.model_validate(fields)


AUTOTRANSFER_WORKERS = 1  # --autotransfer-workers: worker processes, cores split between them


def _decided(study: optuna.Study) -> dict[str, Any]:
    decision = study_decision(study)
    assert decision is not None, "autotransfer completed no trial"
    trial = study.trials[decision.chosen_trial]
    return {
        "params": trial.params,
        "accuracy": decision.chosen_score,
        "stop_reason": read_study(study).stop_reason,
        # trained alone as its trials trained it: the packaged space's own warm_start
        "warm_start": bool(load_spec("default").fixed.get("warm_start", False)),
    }


def run_autotransfer(
    task: Task, storage: str, budget_s: float | None, seed: int
) -> tuple[optuna.Study, dict]:
    """As shipped: no trial or time budget, the search stops when its decision is settled."""
    request = _request(task, storage, "autotransfer", None, seed, workers=AUTOTRANSFER_WORKERS)
    study = run_search(request)
    return study, _decided(study)


def run_autotransfer_ray(
    task: Task, storage: str, budget_s: float | None, seed: int
) -> tuple[optuna.Study, dict]:
    """The same self-stopping search on the Ray backend (a local Ray it starts and stops)."""
    # one trial at a time on all the cores, as the Optuna backend trains it
    threads = os.cpu_count() or 1
    request = _request(
        task, storage, "autotransfer-ray", None, seed, backend="ray", threads=threads
    )
    study = run_search(request)
    return study, _decided(study)


def _plain(request: SearchRequest) -> SearchRequest:
    """The packaged space without the search's own devices: no warm start, no pruning."""
    spec = request.with_spec().spec
    assert spec is not None
    fixed = {**spec.fixed, "warm_start": False}
    budget = spec.budget.model_copy(update={"pruner": NoPruner(type="none"), "stop": "trials"})
    return request.model_copy(
        update={"spec": spec.model_copy(update={"fixed": fixed, "budget": budget})}
    )


def run_ray(
    task: Task, storage: str, budget_s: float | None, seed: int
) -> tuple[optuna.Study, dict]:
    """Ray Tune with ASHA over the space, no seeds, no cache, no warm start."""
    request = _plain(
        _request(task, storage, "ray", budget_s, seed, recommend=False, cache=False, backend="ray")
    )
    spec = request.spec
    assert spec is not None
    asha = spec.budget.model_copy(update={"pruner": HyperbandPruner(), "min_epochs": 1})
    request = request.model_copy(update={"spec": spec.model_copy(update={"budget": asha})})
    study = run_search(request, seeds=[])
    best = study.best_trial
    return study, {"params": best.params, "accuracy": best.value, "warm_start": False}


def plain_optuna(
    task: Task,
    storage: str,
    budget_s: float | None,
    seed: int,
    *,
    pruner: optuna.pruners.BasePruner | None = None,
    first: dict[str, Any] | None = None,
) -> tuple[optuna.Study, dict]:
    """What an engineer writes by hand: TPE over the default space, no cache; each trial
    reports its validation accuracy after every epoch to ``pruner`` (none: full epochs), and
    ``first`` is enqueued as the first trial when given."""
    from autotransfer.backbones import num_blocks

    spec = load_spec("default")
    dataset = task.load()
    n = num_blocks(BACKBONE)
    study = optuna.create_study(
        storage=storage,
        study_name="plain-optuna",
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=pruner or optuna.pruners.NopPruner(),
    )
    if first is not None:
        study.enqueue_trial(first)

    def objective(trial: optuna.Trial) -> float:
        config = _config(task, suggest(trial, spec, n), seed, warm_start=False)

        def report(m: EpochMetrics) -> None:
            trial.report(m.val_accuracy, m.epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        return train_trial(config, dataset, reporter=report).best_val_accuracy

    study.optimize(objective, timeout=budget_s)
    return study, {
        "params": study.best_trial.params,
        "accuracy": study.best_value,
        "warm_start": False,
    }


def run_plain_optuna(
    task: Task, storage: str, budget_s: float | None, seed: int
) -> tuple[optuna.Study, dict]:
    """TPE, full epochs per trial, no pruning, no cache (:func:`plain_optuna`)."""
    return plain_optuna(task, storage, budget_s, seed)


@functools.lru_cache(maxsize=8)
def _plan(task: Task, seed: int) -> SearchPlan:
    """The default space's plan for the task at its full epoch budget (built once)."""
    storage = f"sqlite:///{tempfile.gettempdir()}/plan.db"  # never opened: prepare reads none
    return prepare(_request(task, storage, "plan", None, seed)).plan


def _config(task: Task, params: dict[str, Any], seed: int, *, warm_start: bool) -> TrialConfig:
    """A picked configuration at the task's full epoch budget, as a study of it trains it."""
    config = _plan(task, seed).trial_config(params)
    return config.model_copy(update={"warm_start": warm_start})


def one_run_seconds(task: Task, params: dict[str, Any], seed: int, *, warm_start: bool) -> float:
    """Wall time of one training run of a picked configuration, as ``autotransfer train``
    runs it: the feature cache on, starting empty (its features are computed in the run)."""
    config = _config(task, params, seed, warm_start=warm_start)
    dataset = task.load()
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        train_trial(config, dataset, cache=make_cache(True, folder))
        return time.perf_counter() - start


Method = Callable[[Task, str, "float | None", int], tuple[optuna.Study, dict]]
METHODS: dict[str, Method] = {
    "autotransfer": run_autotransfer,
    "autotransfer on ray": run_autotransfer_ray,
    "plain optuna": run_plain_optuna,
    "ray tune asha": run_ray,
}
STOPS_ITSELF = ("autotransfer", "autotransfer on ray")


def measure(
    task: Task, method: str, budget_s: float | None, oracle_best: float, seed: int
) -> MethodResult:
    saved = os.environ.get("AUTOTRANSFER_CACHE_DIR")
    with tempfile.TemporaryDirectory() as tmp:
        storage = f"sqlite:///{tmp}/study.db"
        os.environ["AUTOTRANSFER_CACHE_DIR"] = f"{tmp}/node-features"  # a Ray node's cache
        try:
            start = time.time()
            study, picked = METHODS[method](task, storage, budget_s, seed)
            wall = time.time() - start
        finally:
            if saved is None:
                os.environ.pop("AUTOTRANSFER_CACHE_DIR", None)
            else:
                os.environ["AUTOTRANSFER_CACHE_DIR"] = saved
        rows = _finish_times(study, start)
        states = [t.state for t in study.get_trials(deepcopy=False)]
    one_run = one_run_seconds(task, picked["params"], seed, warm_start=picked["warm_start"])
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
        stop_reason=picked.get("stop_reason"),
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


def _runs(r: MethodResult) -> float | None:
    """Time to target in units of one training run of the picked configuration."""
    return r.time_to_target_s / r.one_run_s if r.time_to_target_s is not None else None


def _median_runs(runs: list[MethodResult]) -> tuple[float, bool]:
    """Median time to target in runs, and whether it is only a lower bound.

    A run that never reached the target took *at least* its whole wall time: that stands
    in for its time. The median of these lower bounds bounds the true median from below,
    and is exact when the run in the middle reached the target.
    """
    times = sorted(
        (value, False) if (value := _runs(r)) is not None else (r.wall_s / r.one_run_s, True)
        for r in runs
    )
    middle = times[(len(times) - 1) // 2 : len(times) // 2 + 1]
    return statistics.mean(t for t, _ in middle), any(censored for _, censored in middle)


def summary(rows: list[MethodResult]) -> list[str]:
    """Medians over the seeds per method: the figures issue 11 sets targets for."""
    methods = [m for m in dict.fromkeys(r.method for r in rows) if m != "oracle grid"]
    lines = [
        "",
        "| method | runs | reached target | median search cost | median time to target "
        "(runs) | median regret (points) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for m in methods:
        runs = [r for r in rows if r.method == m]
        ttt, censored = _median_runs(runs)
        reached = sum(r.time_to_target_s is not None for r in runs)
        lines.append(
            f"| {m} | {len(runs)} | {reached}/{len(runs)} | "
            f"{statistics.median(r.search_cost for r in runs):.2f} | "
            f"{'≥ ' if censored else ''}{ttt:.2f} | "
            f"{100 * statistics.median(r.regret for r in runs):+.2f} |"
        )
    return lines


def _budget(r: MethodResult) -> str:
    if r.budget_s:
        return _fmt(r.budget_s)
    return "stops itself" if r.method in STOPS_ITSELF else "-"


def table(task: str, oracle_best: float, rows: list[MethodResult]) -> str:
    lines = [
        f"### {task} (oracle best {oracle_best:.4f}, target {oracle_best - TARGET_POINTS:.4f})",
        "",
        "| method | seed | budget s | trials (pruned) | picked k | picked acc | regret "
        "| time to target s | wall s | one run s | search cost |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.method} | {r.seed} | {_budget(r)} | "
            f"{r.trials} ({r.pruned}) | "
            f"{r.picked_params.get('freeze_depth')} | {r.picked_accuracy:.4f} | "
            f"{r.regret:+.4f} | {_fmt(r.time_to_target_s)} | {r.wall_s:.0f} | "
            f"{r.one_run_s:.1f} | {r.search_cost:.2f} |"
        )
    lines += summary(rows)
    reasons = sorted({r.stop_reason for r in rows if r.stop_reason})
    if reasons:
        lines += ["", "Why the self-stopping runs stopped:", ""]
        lines += [f"- {reason}" for reason in reasons]
    return "\n".join(lines) + "\n"


def included(path: str, task: str) -> list[MethodResult]:
    """Rows of ``task`` from an earlier run's JSON."""
    return [
        MethodResult(**row)
        for row in json.loads(Path(path).read_text()).get(task, [])
        if row["method"] != "oracle grid"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["digits", "fmnist-1k", "fmnist-20k"])
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds for the methods that cannot stop (default: the wall time the "
        "self-stopping autotransfer took in the same repeat)",
    )
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    parser.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="JSON",
        help="a results .json of an earlier run whose rows join this run's tables and medians",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "search_efficiency")
    parser.add_argument(
        "--autotransfer-workers", type=int, default=1, help="worker processes for method (a)"
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs per method, seeds 0…N−1")
    args = parser.parse_args()
    global AUTOTRANSFER_WORKERS
    AUTOTRANSFER_WORKERS = args.autotransfer_workers
    torch.set_num_threads(os.cpu_count() or 1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    report = ["## Search cost: the self-stopping search against fixed-budget baselines\n", header()]
    raw: dict[str, Any] = {}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # the self-stopping searches first: the others get the wall time they took
    order = sorted(args.methods, key=lambda m: m not in STOPS_ITSELF)
    for name in args.tasks:
        task = TASKS[name]
        grid = load_oracle(name)
        oracle_best = best_cell(grid)["best"]
        rows = [row for spec in args.include for row in included(spec, name)]
        for seed in range(args.repeats):
            budget = args.budget
            for method in order:
                limit = None if method in STOPS_ITSELF else budget
                print(f"{name}: {method}, seed {seed}, budget {limit} …", flush=True)
                rows.append(measure(task, method, limit, oracle_best, seed))
                if method == "autotransfer" and budget is None:
                    budget = rows[-1].wall_s
                print(f"  {asdict(rows[-1])}", flush=True)
                raw[name] = [asdict(r) for r in rows]  # after every run: a stopped run keeps
                args.out.with_suffix(".json").write_text(json.dumps(raw, indent=1))  # its rows
        rows.append(oracle_row(grid))
        text = table(name, oracle_best, rows)
        print(text, flush=True)
        report.append(text)
        raw[name] = [asdict(r) for r in rows]
    args.out.with_suffix(".md").write_text("\n".join(report))
    args.out.with_suffix(".json").write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
