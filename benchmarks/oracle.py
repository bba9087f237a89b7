"""The oracle grid of ../shared/BENCHMARKS.md: every freeze depth × base LR at full budget.

Each cell trains EfficientNet-Lite0 (packaged ImageNet weights, 32×32) with SGD + Nesterov
momentum 0.9, weight decay 1e-4, cosine schedule, batch 64, seed 0, and scores the best
validation accuracy over epochs. Cells are appended to ``docs/results/oracle-<task>.json``
as they finish, so an interrupted run resumes and later benchmarks reuse the grid.

    python benchmarks/oracle.py --task digits          # k = 0…17 × 4 LRs, 6 epochs
    python benchmarks/oracle.py --task fmnist-20k      # documented depth subset, 3 epochs
    python benchmarks/oracle.py --rank-correlation     # how early epochs rank the stored cells

The rank-correlation report reads the stored grids only (no training): for every epoch e it
gives Spearman's rho between the cells' accuracy after epoch e and their best accuracy, over
the cells that train something (k > 0; k = 0 trains a head only and converges differently).
It is the evidence behind ``min_epochs`` in the packaged search spaces: a pruner that judges
trials at epoch e can only be as good as that ranking.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from _report import machine  # type: ignore[import-not-found]
from _tasks import BACKBONE, INPUT_SIZE, ORACLE_LRS, TASKS  # type: ignore[import-not-found]

from autotransfer.backbones import num_blocks
from autotransfer.finetune import TrialConfig, train_trial

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"


def oracle_path(task: str) -> Path:
    return RESULTS / f"oracle-{task}.json"


def load_oracle(task: str) -> dict[str, Any]:
    """The stored grid for ``task``; raises with the command that computes it."""
    path = oracle_path(task)
    if not path.is_file():
        raise SystemExit(
            f"no oracle grid for {task}: run `python benchmarks/oracle.py --task {task}`"
        )
    return json.loads(path.read_text())


def best_cell(grid: dict[str, Any]) -> dict[str, Any]:
    return max(grid["cells"], key=lambda c: c["best"])


def depth_table(grid: dict[str, Any]) -> dict[int, float]:
    """Best accuracy per freeze depth over the grid's learning rates."""
    best: dict[int, float] = {}
    for cell in grid["cells"]:
        best[cell["k"]] = max(best.get(cell["k"], 0.0), cell["best"])
    return dict(sorted(best.items()))


def rank_correlation(grid: dict[str, Any]) -> list[tuple[int, float, int]]:
    """(epoch, Spearman rho of epoch-accuracy vs best accuracy, cells) over the k > 0 cells."""
    from scipy.stats import spearmanr

    cells = [c for c in grid["cells"] if c["k"] > 0]
    epochs = min((len(c["per_epoch"]) for c in cells), default=0)
    rows = []
    for e in range(1, epochs + 1):
        rho = spearmanr([c["per_epoch"][e - 1] for c in cells], [c["best"] for c in cells])
        rows.append((e, float(rho.statistic), len(cells)))
    return rows


def print_rank_correlation(tasks: list[str]) -> None:
    print("| task | cells (k > 0) | " + " | ".join(f"epoch {e}" for e in range(1, 7)) + " |")
    print("|---|---|" + "---|" * 6)
    for name in tasks:
        if not oracle_path(name).is_file():
            print(f"| {name} | no grid: `python benchmarks/oracle.py --task {name}` |")
            continue
        rows = rank_correlation(load_oracle(name))
        rhos = [f"{rho:.2f}" for _, rho, _ in rows] + ["–"] * (6 - len(rows))
        cells = rows[0][2] if rows else 0
        print(f"| {name} | {cells} | " + " | ".join(rhos) + " |")


def oracle_config(k: int, lr: float, epochs: int) -> TrialConfig:
    return TrialConfig(
        backbone=BACKBONE,
        weights="DEFAULT",
        freeze_depth=k,
        base_lr=lr,
        optimizer="sgd",
        momentum=0.9,
        nesterov=True,
        weight_decay=1e-4,
        epochs=epochs,
        batch_size=64,
        input_size=INPUT_SIZE,
        seed=0,
        device="cpu",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--task", choices=sorted(TASKS), help="compute (or resume) this grid")
    mode.add_argument(
        "--rank-correlation",
        action="store_true",
        help="report how well each epoch's accuracy ranks the stored cells (no training)",
    )
    parser.add_argument("--depths", type=int, nargs="+", help="override the task's depths")
    args = parser.parse_args()
    if args.rank_correlation:
        print_rank_correlation(list(TASKS))
        return
    torch.set_num_threads(os.cpu_count() or 1)
    task = TASKS[args.task]
    n = num_blocks(BACKBONE)
    depths = args.depths or list(task.oracle_depths or range(n + 1))
    path = oracle_path(task.name)
    grid: dict[str, Any] = (
        json.loads(path.read_text())
        if path.is_file()
        else {"task": task.name, "backbone": BACKBONE, "epochs": task.oracle_epochs, "cells": []}
    )
    grid["machine"] = machine()
    done = {(c["k"], c["lr"]) for c in grid["cells"]}
    dataset = task.load()
    grid["dataset_fingerprint"] = dataset.fingerprint
    for k in depths:
        for lr in ORACLE_LRS:
            if (k, lr) in done:
                continue
            start = time.perf_counter()
            result = train_trial(oracle_config(k, lr, task.oracle_epochs), dataset)
            cell = {
                "k": k,
                "lr": lr,
                "best": result.best_val_accuracy,
                "per_epoch": [m.val_accuracy for m in result.history],
                "seconds": round(time.perf_counter() - start, 2),
                "trainable": result.trainable_parameters,
            }
            grid["cells"].append(cell)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(grid, indent=1))
            print(
                f"{task.name} k={k:2d} lr={lr:<5} best={cell['best']:.4f} ({cell['seconds']}s)",
                flush=True,
            )
    top = best_cell(grid)
    print(f"oracle best on {task.name}: {top['best']:.4f} at k={top['k']}, lr={top['lr']}")


if __name__ == "__main__":
    main()
