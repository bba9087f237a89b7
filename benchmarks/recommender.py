"""The recommender against the oracle grid of ../shared/BENCHMARKS.md: regret and depth rank.

For each task whose oracle grid (``docs/results/oracle-<task>.json``) is complete, the
recommendation is computed on the task's data (EfficientNet-Lite0, packaged ImageNet
weights, 32×32) and compared with the grid:

- **regret (grid)**: oracle best − the grid's accuracy at the recommended freeze depth and
  the grid LR nearest to the recommended base LR (log scale). The grid trains the head at
  the base LR; the recommendation's head LR multiplier is not part of this figure.
- **depth rank**: rank of the recommended depth among the grid's depths, each scored by its
  best LR (1 = the oracle's best depth).
- **seeds (grid)**: the best grid cell among the five seeds a study starts with
  (k, k±1, LR ×3, LR ÷3, each at its nearest grid point), and its regret.
- with ``--train``: the recommended configuration itself (its head LR multiplier, LP-FT
  where recommended) trained once with the oracle protocol, and its regret.

Writes ``docs/results/recommender.json`` and the recommender section of
``docs/benchmarks.md``. Tasks without a complete grid are reported with the command that
computes it.

    python benchmarks/recommender.py                    # every task with a complete grid
    python benchmarks/recommender.py --train            # also train each recommendation
    python benchmarks/recommender.py --partial          # incomplete grids too, clearly marked
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any

import torch
from _report import header  # type: ignore[import-not-found]
from _tasks import BACKBONE, INPUT_SIZE, ORACLE_LRS, TASKS  # type: ignore[import-not-found]
from oracle import RESULTS, best_cell, depth_table, oracle_config, oracle_path  # type: ignore[import-not-found]

from autotransfer.backbones import num_blocks
from autotransfer.finetune import train_trial
from autotransfer.recommend import Recommendation, recommend

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
BEGIN, END = "<!-- recommender:begin -->", "<!-- recommender:end -->"


def expected_cells(task: str) -> int:
    depths = TASKS[task].oracle_depths or range(num_blocks(BACKBONE) + 1)
    return len(tuple(depths)) * len(ORACLE_LRS)


def load_grid(task: str, *, partial: bool) -> dict[str, Any] | None:
    """The stored grid when complete; with ``partial``, whatever cells it has so far."""
    path = oracle_path(task)
    if not path.is_file() and not partial:
        return None
    grid = (
        json.loads(path.read_text())
        if path.is_file()
        else {"task": task, "backbone": BACKBONE, "cells": []}
    )
    if len(grid["cells"]) >= expected_cells(task):
        return grid
    if not partial:
        return None
    grid["partial"] = True
    grid["stored_cells"] = len(grid["cells"])
    # cells this script trained on an earlier partial run (same protocol), reused
    known = {(c["k"], c["lr"]) for c in grid["cells"]}
    if fills_path(task).is_file():
        extra = json.loads(fills_path(task).read_text())
        grid["cells"] += [c for c in extra if (c["k"], c["lr"]) not in known]
    return grid


def fills_path(task: str) -> Path:
    return RESULTS / f"recommender-fills-{task}.json"


def nearest_lr(lr: float) -> float:
    return min(ORACLE_LRS, key=lambda g: abs(math.log(g / lr)))


def cell(grid: dict[str, Any], k: int, lr: float, *, fill: bool = True) -> dict[str, Any] | None:
    """The grid cell at depth ``k`` (the nearest grid depth on a depth subset) and nearest LR.

    On a partial grid (``grid["partial"]``) a missing cell is trained now with the oracle
    protocol and added to the grid, marked ``"filled": true`` (``None`` without ``fill``).
    """
    lr = nearest_lr(lr)
    if not grid.get("partial"):
        depths = sorted({c["k"] for c in grid["cells"]})
        k = min(depths, key=lambda d: (abs(d - k), d))  # the large task's grid is a subset
    found = [c for c in grid["cells"] if c["k"] == k and c["lr"] == lr]
    if found:
        return found[0]
    if not fill:
        return None
    start = time.perf_counter()
    epochs = TASKS[grid["task"]].oracle_epochs
    result = train_trial(oracle_config(k, lr, epochs), TASKS[grid["task"]].load())
    filled = {"k": k, "lr": lr, "best": result.best_val_accuracy, "filled": True}
    grid["cells"].append(filled)
    fills = [c for c in grid["cells"] if c.get("filled")]
    fills_path(grid["task"]).write_text(json.dumps(fills, indent=1))
    print(
        f"filled cell k={k} lr={lr}: {filled['best']:.4f} ({time.perf_counter() - start:.0f} s)",
        flush=True,
    )
    return filled


def depth_rank(grid: dict[str, Any], k: int) -> tuple[int, int]:
    table = depth_table(grid)
    depths = sorted(table)
    mine = table[k if k in table else min(depths, key=lambda d: (abs(d - k), d))]
    return 1 + sum(v > mine for v in table.values()), len(table)


def train_recommended(rec: Recommendation, task: str) -> tuple[float, float]:
    params = rec.config_params()
    epochs = TASKS[task].oracle_epochs
    lp_ft = min(params["lp_ft_epochs"], epochs - 1) if params["freeze_depth"] else 0
    config = oracle_config(params["freeze_depth"], params["base_lr"], epochs).model_copy(
        update={"head_lr_mult": params["head_lr_mult"], "lp_ft_epochs": lp_ft}
    )
    start = time.perf_counter()
    result = train_trial(config, TASKS[task].load())
    return result.best_val_accuracy, time.perf_counter() - start


def evaluate(
    task: str,
    grid: dict[str, Any],
    budget: str,
    train: bool,
    reference_depths: list[int],
    fill_seeds: bool = False,
) -> dict[str, Any]:
    dataset = TASKS[task].load()
    start = time.perf_counter()
    rec = recommend(dataset, BACKBONE, input_size=INPUT_SIZE, budget=budget)  # type: ignore[arg-type]
    rec_seconds = time.perf_counter() - start
    at = cell(grid, rec.freeze_depth, rec.base_lr)
    assert at is not None
    if grid.get("partial"):
        for k in reference_depths:  # reference points where the partial grid has none
            for lr in (rec.base_lr, rec.base_lr * 3):
                cell(grid, k, lr)
    # on a partial grid seeds use the cells there are, unless fill_seeds trains them too
    wanted = rec.seed_params()
    found = [cell(grid, s["freeze_depth"], s["base_lr"], fill=fill_seeds) for s in wanted]
    seeds = [c for c in found if c is not None]
    # on a depth subset, which grid depth each wanted depth was read at
    read_at = {
        s["freeze_depth"]: c["k"]
        for s, c in zip(wanted, found, strict=True)
        if c is not None and c["k"] != s["freeze_depth"]
    }
    best_seed = max(seeds, key=lambda c: c["best"])
    best = best_cell(grid)  # after filling: a partial grid's best includes the filled cells
    rank, depths = depth_rank(grid, rec.freeze_depth)
    row: dict[str, Any] = {
        "task": task,
        "num_train": rec.profile["num_train"],
        "similarity": rec.similarity,
        "bn_shift": rec.signals["bn_shift"],
        "probe_gain": rec.signals["probe_gain"],
        "rule": rec.rule,
        "strategy": rec.strategy,
        "k": rec.freeze_depth,
        "base_lr": rec.base_lr,
        "recommend_seconds": round(rec_seconds, 1),
        "oracle_best": best["best"],
        "oracle_k": best["k"],
        "oracle_lr": best["lr"],
        "grid_k": at["k"],
        "grid_lr": at["lr"],
        "grid_accuracy": at["best"],
        "regret": best["best"] - at["best"],
        "depth_rank": rank,
        "depths": depths,
        "seed_best": best_seed["best"],
        "seed_cell": [best_seed["k"], best_seed["lr"]],
        "seed_regret": best["best"] - best_seed["best"],
        "seeds_measured": f"{len(seeds)} of {len(found)}",
        "reasons": rec.reasons,
        "grid_depths": sorted({c["k"] for c in grid["cells"]}),
        "depths_read_at": {str(k): v for k, v in sorted(read_at.items())},
    }
    if grid.get("partial"):
        row["partial"] = {
            "stored_cells": grid["stored_cells"],
            "expected_cells": expected_cells(task),
            "filled": [[c["k"], c["lr"], c["best"]] for c in grid["cells"] if c.get("filled")],
            "depths_measured": sorted({c["k"] for c in grid["cells"]}),
        }
    if train:
        accuracy, seconds = train_recommended(rec, task)
        row.update(trained=accuracy, trained_regret=best["best"] - accuracy, train_s=seconds)
    return row


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| task | train | similarity (BN shift, probe gain) | rule | recommended k, LR | "
        "oracle best (k, LR) | grid at recommended | regret | depth rank | best seed (k, LR) "
        "| seed regret | trained recommended | regret |",
        "|---|---:|---|---|---|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        trained = (
            (f"{r['trained']:.4f}", f"{r['trained_regret'] * 100:+.2f} pt")
            if "trained" in r
            else ("-", "-")
        )
        lines.append(
            f"| {r['task']} | {r['num_train']:,} | {r['similarity']:.2f} ({r['bn_shift']:.2f}, "
            f"{r['probe_gain']:.2f}) | {r['rule']} | {r['k']}, {r['base_lr']:g} | "
            f"{r['oracle_best']:.4f} ({r['oracle_k']}, {r['oracle_lr']:g}) | "
            f"{r['grid_accuracy']:.4f} ({r['grid_k']}, {r['grid_lr']:g}) | "
            f"{r['regret'] * 100:.2f} pt | {r['depth_rank']} of {r['depths']} | "
            f"{r['seed_best']:.4f} ({r['seed_cell'][0]}, {r['seed_cell'][1]:g}; "
            f"{r['seeds_measured']} in the grid) | "
            f"{r['seed_regret'] * 100:.2f} pt | {trained[0]} | {trained[1]} |"
        )
    return "\n".join(lines)


def write_section(body: str) -> None:
    section = f"{BEGIN}\n{body.rstrip()}\n{END}\n"
    text = DOC.read_text() if DOC.is_file() else "# Benchmarks\n\n"
    if BEGIN in text and END in text:
        text = re.sub(
            re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", section, text, flags=re.S
        )
    else:
        text = text.rstrip() + "\n\n" + section
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=list(TASKS))
    parser.add_argument("--budget", choices=("limited", "ample"), default="limited")
    parser.add_argument("--train", action="store_true", help="also train each recommendation")
    parser.add_argument(
        "--partial",
        action="store_true",
        help="use incomplete grids too (missing cells the comparison needs are trained now)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--fill-seeds", action="store_true", help="with --partial: also train missing seed cells"
    )
    parser.add_argument(
        "--fill-depths",
        type=int,
        nargs="*",
        default=[],
        help="with --partial: also train these depths at the recommended LR and ×3",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows, missing = [], []
    for task in args.tasks:
        grid = load_grid(task, partial=args.partial)
        if grid is None:
            path = oracle_path(task)
            have = len(json.loads(path.read_text())["cells"]) if path.is_file() else 0
            missing.append(
                f"`{task}`: oracle grid incomplete ({have} of {expected_cells(task)} cells); "
                f"compute it with `python benchmarks/oracle.py --task {task}`"
            )
            print(f"skipped {missing[-1]}", flush=True)
            continue
        rows.append(
            evaluate(task, grid, args.budget, args.train, args.fill_depths, args.fill_seeds)
        )
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "reasons"}), flush=True)
    for task in TASKS:
        if task not in args.tasks:
            missing.append(
                f"`{task}`: not run; `python benchmarks/oracle.py --task {task}` computes its "
                f"grid ({expected_cells(task)} cells), then `python benchmarks/recommender.py`"
            )
    if not rows:
        raise SystemExit("no task has a complete oracle grid; nothing to compare")
    body = f"## Recommender vs the oracle grid (budget {args.budget})\n\n{header()}\n"
    body += (
        "EfficientNet-Lite0 (packaged ImageNet weights) at 32×32 on the tasks of BENCHMARKS.md. "
        "*Grid at recommended*: the oracle cell at the recommended freeze depth and the grid LR "
        "nearest the recommended base LR; *regret* = oracle best − that cell; *depth rank*: "
        "the recommended depth among the grid's depths, each at its best LR; *best seed*: the "
        "best grid cell among the five seeds a study starts with (k, k±1, LR ×3, LR ÷3). "
        "*Trained recommended* (with `--train`): the recommended configuration itself, its "
        "head LR multiplier included, trained once with the oracle protocol. Raw rows: "
        "`docs/results/recommender.json`. The rule that digits and fmnist-1k fall under "
        "(`small-different-limited`) was calibrated on these two grids "
        "(`autotransfer/recommend/_rules.py` says how), so their rows are in-sample; "
        "fmnist-20k falls under a rule the grids did not touch and is the held-out check.\n\n"
    )
    body += table(rows) + "\n"
    for r in rows:
        if r.get("depths_read_at"):
            mapped = ", ".join(f"{k} at {v}" for k, v in r["depths_read_at"].items())
            body += (
                f"\n**{r['task']}: depth subset.** Its grid covers depths "
                f"{r['grid_depths']} only (BENCHMARKS.md allows a subset"
                f" on the large task), so the grid columns read the recommended and seed "
                f"depths at the nearest grid depth ({mapped}). The *trained recommended* column "
                "is the exact recommended configuration.\n"
            )
        if "partial" in r:
            part = r["partial"]
            filled = ", ".join(f"k={k} LR {lr:g}: {acc:.4f}" for k, lr, acc in part["filled"])
            body += (
                f"\n**{r['task']}: partial grid.** The oracle run had stored "
                f"{part['stored_cells']} of {part['expected_cells']} cells; the cells the "
                f"comparison needed were trained here with the oracle protocol ({filled or 'none'}"
                f"), so depths {part['depths_measured']} are covered. The *oracle best* is the "
                "best of these cells, so the regret and depth rank are lower bounds: the "
                "complete grid can only raise the best and add better depths.\n"
            )
    if missing:
        body += "\nNot measured: " + "; ".join(missing) + ".\n"
    print(body)
    if not args.no_write:
        (RESULTS / "recommender.json").write_text(json.dumps(rows, indent=1))
        write_section(body)


if __name__ == "__main__":
    main()
