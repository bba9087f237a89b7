"""Searching the backbone too: the model-zoo search against the single-backbone one, and the
linear probe's ranking of backbones against the ranking training gives.

1. **Search cost, side by side** (``--cost``): on a task, per seed, the packaged ``default``
   space on EfficientNet-Lite0 and the packaged ``model_zoo`` space over Lite0, Lite1 and
   Lite2, each a self-stopping autotransfer search (recommender seeds, decision pruner,
   cache), in one run of this script. Search cost per ../shared/BENCHMARKS.md: wall time
   from the start to the decision ÷ one training run of the configuration it picked, trained
   alone as ``autotransfer train`` would (cache on, same epochs, same input size). Both
   searches' costs in runs and in seconds are reported, with the zoo's decision per backbone
   (accuracy, parameters, multiply-adds, latency per image).
2. **Probe vs trained ranking** (``--ranking``): per task, each backbone's linear probe (the
   recommender's, the prior the zoo search ranks by) against validation accuracy after
   training each backbone at a few depths (fractions 0, 1/3, 2/3 of its blocks, the
   recommender's learning rates, the task's epochs). Spearman's rho over backbones × depths
   (the probe gives one score per backbone), and per depth over the three backbones.

    python benchmarks/model_zoo.py --cost --task digits --seeds 2
    python benchmarks/model_zoo.py --ranking --task digits --task fmnist-1k
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _report import header  # type: ignore[import-not-found]
from _tasks import TASKS, Task  # type: ignore[import-not-found]
from scipy.stats import spearmanr

from autotransfer.backbones import depth_of_fraction
from autotransfer.cache import make_cache
from autotransfer.finetune import train_trial
from autotransfer.record import read_study
from autotransfer.search import SearchRequest, prepare, recommend_seeds, run_search, study_decision
from autotransfer.space import fit_to_space

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"
LITES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
FRACTIONS = (0.0, 1 / 3, 2 / 3)


def _request(task: Task, space: str, folder: str, name: str, seed: int) -> SearchRequest:
    return SearchRequest(
        dataset=task.dataset,
        max_train=task.max_train,
        max_val=task.max_val,
        space=space,
        max_epochs=task.oracle_epochs,
        seed=seed,
        split_seed=0,
        storage=f"sqlite:///{folder}/{name}.db",
        study_name=name,
        device="cpu",
    )


def _one_run(request: SearchRequest, params: dict[str, Any]) -> float:
    """The picked configuration trained alone, as ``autotransfer train`` trains it."""
    p = prepare(request)
    config = p.trial_config(params)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        train_trial(config, p.dataset, cache=make_cache(True, folder))
        return time.perf_counter() - start


def search(task: Task, space: str, seed: int, folder: str) -> dict[str, Any]:
    request = _request(task, space, folder, f"{space}-{seed}", seed)
    start = time.perf_counter()
    study = run_search(request)
    decision = study_decision(study)
    wall = time.perf_counter() - start
    assert decision is not None
    chosen = study.trials[decision.chosen_trial].params
    run_s = _one_run(request, dict(chosen))
    info = read_study(study)
    return {
        "space": space,
        "seed": seed,
        "wall_s": wall,
        "one_run_s": run_s,
        "search_cost_runs": wall / run_s,
        "trials": len(study.trials),
        "chosen": chosen,
        "chosen_backbone": decision.chosen_backbone or request.backbone,
        "val_accuracy": decision.chosen_score,
        "best_score": decision.best_score,
        "stop_reason": info.stop_reason,
        "by_backbone": [vars(r) for r in decision.by_backbone],
        "ranking": info.backbone_ranking,
    }


def cost_report(task: Task, rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        f"### {task.name}: the model-zoo search against the single-backbone search",
        "",
        "| space | seed | trials | chosen | k | val accuracy | wall s | one run s | search cost "
        "(runs) | stop |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['space']} | {r['seed']} | {r['trials']} | {r['chosen_backbone']} "
            f"| {r['chosen'].get('freeze_depth')} | {r['val_accuracy']:.4f} | {r['wall_s']:.0f} "
            f"| {r['one_run_s']:.1f} | {r['search_cost_runs']:.2f} "
            f"| {(r['stop_reason'] or '').split(':')[0]} |"
        )
    by_space: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_space.setdefault(r["space"], []).append(r)
    if {"default", "model_zoo"} <= set(by_space):
        single, zoo = by_space["default"], by_space["model_zoo"]
        runs = [
            z["search_cost_runs"] / s["search_cost_runs"] for s, z in zip(single, zoo, strict=True)
        ]
        walls = [z["wall_s"] / s["wall_s"] for s, z in zip(single, zoo, strict=True)]
        lines += [
            "",
            f"Zoo ÷ single, per seed: search cost in runs {', '.join(f'{x:.2f}' for x in runs)}"
            f" (median {statistics.median(runs):.2f}); wall time "
            f"{', '.join(f'{x:.2f}' for x in walls)} (median {statistics.median(walls):.2f}).",
        ]
    for r in rows:
        if not r["by_backbone"]:
            continue
        lines += [
            "",
            f"Zoo seed {r['seed']}, per backbone (probe ranking: "
            + ", ".join(f"{x['backbone']} {x['probe_accuracy']:.3f}" for x in r["ranking"] or [])
            + "):",
            "",
            "| backbone | input | trials | complete | best val accuracy | parameters | MACs "
            "| latency / image |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for b in r["by_backbone"]:
            best = f"{b['best_score']:.4f}" if b["best_score"] is not None else "-"
            lines.append(
                f"| {b['backbone']} | {b['input_size']} | {b['trials']} | {b['complete']} "
                f"| {best} | {b['parameters'] / 1e6:.2f} M | {b['macs'] / 1e6:.1f} M "
                f"| {b['latency_ms']:.1f} ms |"
            )
    return lines


def ranking(task: Task, folder: str) -> dict[str, Any]:
    """Each backbone's probe, and its trained accuracy at each of ``FRACTIONS``."""
    request = _request(task, "model_zoo", folder, "ranking", 0)
    p = prepare(request)
    seeding = recommend_seeds(p)
    assert seeding.ranking is not None
    probe = {r["backbone"]: r["probe_accuracy"] for r in seeding.ranking}
    first_seed = {s.params["backbone"]: s.params for s in reversed(seeding.seeds)}
    rows = []
    for backbone in LITES:
        base = first_seed.get(backbone)
        if base is None:  # not seeded: the recommender's configuration for it
            from autotransfer.search._seeding import _recommend, complete_seed

            rec = _recommend(p, backbone)
            base = {**complete_seed(p.spec, rec.seed_params()[0]), "backbone": backbone}
        for fraction in FRACTIONS:
            k = depth_of_fraction(fraction, p.backbone_blocks[backbone])
            config = p.trial_config(fit_to_space(p.spec, p.blocks, {**base, "freeze_depth": k}))
            with tempfile.TemporaryDirectory() as cache_dir:
                start = time.perf_counter()
                result = train_trial(config, p.dataset, cache=make_cache(True, cache_dir))
            rows.append(
                {
                    "backbone": backbone,
                    "fraction": round(fraction, 3),
                    "k": k,
                    "probe": probe[backbone],
                    "val_accuracy": result.best_val_accuracy,
                    "seconds": time.perf_counter() - start,
                }
            )
            print(rows[-1], flush=True)
    overall = spearmanr([r["probe"] for r in rows], [r["val_accuracy"] for r in rows])
    per_depth = {}
    for fraction in FRACTIONS:
        at = [r for r in rows if r["fraction"] == round(fraction, 3)]
        rho = spearmanr([r["probe"] for r in at], [r["val_accuracy"] for r in at])
        per_depth[f"{fraction:.2f}"] = float(rho.statistic)
    best_trained = max(rows, key=lambda r: r["val_accuracy"])["backbone"]
    return {
        "task": task.name,
        "rows": rows,
        "spearman_overall": float(overall.statistic),
        "spearman_per_depth": per_depth,
        "probe_top": seeding.ranking[0]["backbone"],
        "trained_top": best_trained,
    }


def ranking_report(result: dict[str, Any]) -> list[str]:
    lines = [
        f"### {result['task']}: probe ranking against trained ranking",
        "",
        "| backbone | probe | k (fraction) | val accuracy | s |",
        "|---|---:|---|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['backbone']} | {r['probe']:.3f} | {r['k']} ({r['fraction']:.2f}) "
            f"| {r['val_accuracy']:.4f} | {r['seconds']:.0f} |"
        )
    per_depth = ", ".join(f"{d}: {v:.2f}" for d, v in result["spearman_per_depth"].items())
    lines += [
        "",
        f"Spearman's rho, probe vs trained, over backbones × depths: "
        f"{result['spearman_overall']:.2f}; per depth fraction over the three backbones: "
        f"{per_depth}. Probe's top backbone {result['probe_top']}, trained top "
        f"{result['trained_top']}.",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", action="append", choices=sorted(TASKS))
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--cost", action="store_true")
    parser.add_argument("--ranking", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tasks = [TASKS[name] for name in (args.task or ["digits"])]
    RESULTS.mkdir(parents=True, exist_ok=True)
    lines = ["# The model-zoo search (issue 16)", "", header()]
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="zoo-") as folder:
        for task in tasks:
            if args.cost:
                rows = []
                for seed in range(args.seeds):
                    for space in ("default", "model_zoo"):
                        rows.append(search(task, space, seed, folder))
                        print(json.dumps(rows[-1], default=str), flush=True)
                out[f"cost-{task.name}"] = rows
                lines += [*cost_report(task, rows), ""]
            if args.ranking:
                result = ranking(task, folder)
                out[f"ranking-{task.name}"] = result
                lines += [*ranking_report(result), ""]
    stem = "model_zoo_" + "_".join(t.name for t in tasks) + ("_cost" if args.cost else "")
    stem += "_ranking" if args.ranking else ""
    (RESULTS / f"{stem}.json").write_text(json.dumps(out, indent=1, default=str))
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
