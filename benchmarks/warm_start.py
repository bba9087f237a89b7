"""Warm start against cold start: convergence and how early an epoch ranks configurations.

For a subset of an oracle grid's cells (freeze depth × base LR, the oracle's protocol), this
trains each cell again with ``warm_start`` (the head starts from a linear probe on the frozen
top features) and compares it with the cold cell stored in ``docs/results/oracle-<task>.json``:
accuracy per epoch, best accuracy, and Spearman's rho between the accuracy after epoch e and
the best accuracy over the cells, for both starts. A pruner that judges trials at epoch e can
only be as good as that ranking (``oracle.py --rank-correlation`` gives the cold figures
over the whole grid).

    python benchmarks/warm_start.py --task digits
    python benchmarks/warm_start.py --task fmnist-1k --depths 1 4 7 11 15 17 --lrs 0.01 0.1

Warm runs use the feature cache as ``autotransfer train`` does (a fresh folder per task), so
their seconds include computing the features once and fitting the probe once.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _report import header  # type: ignore[import-not-found]
from _tasks import TASKS  # type: ignore[import-not-found]
from oracle import load_oracle, oracle_config  # type: ignore[import-not-found]
from scipy.stats import spearmanr

from autotransfer.cache import make_cache
from autotransfer.finetune import train_trial

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"


def ranks(cells: list[dict[str, Any]], key: str) -> list[float]:
    """Spearman's rho of each epoch's accuracy against the best, over ``cells``."""
    epochs = min(len(c[key]) for c in cells)
    best = [max(c[key]) for c in cells]
    return [float(spearmanr([c[key][e] for c in cells], best).statistic) for e in range(epochs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(TASKS), default="digits")
    parser.add_argument("--depths", type=int, nargs="+", default=[1, 4, 7, 11, 15, 17])
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.01, 0.1])
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    task = TASKS[args.task]
    grid = load_oracle(task.name)
    cold = {(c["k"], c["lr"]): c for c in grid["cells"]}
    dataset = task.load()
    out = RESULTS / f"warm_start-{task.name}.json"
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        cache = make_cache(True, folder)
        for k in args.depths:
            for lr in args.lrs:
                if (k, lr) not in cold:
                    continue
                config = oracle_config(k, lr, task.oracle_epochs).model_copy(
                    update={"warm_start": True}
                )
                start = time.perf_counter()
                result = train_trial(config, dataset, cache=cache)
                row = {
                    "k": k,
                    "lr": lr,
                    "warm": [m.val_accuracy for m in result.history],
                    "cold": cold[(k, lr)]["per_epoch"],
                    "warm_s": round(time.perf_counter() - start, 2),
                    "cold_s": cold[(k, lr)]["seconds"],
                }
                rows.append(row)
                print(
                    f"{task.name} k={k:2d} lr={lr:<5} warm {max(row['warm']):.4f} "
                    f"(epoch 1 {row['warm'][0]:.4f}) cold {max(row['cold']):.4f} "
                    f"(epoch 1 {row['cold'][0]:.4f}) {row['warm_s']} s",
                    flush=True,
                )
                out.write_text(json.dumps({"task": task.name, "cells": rows}, indent=1))
    report(task.name, rows)


def report(task: str, rows: list[dict[str, Any]]) -> None:
    epochs = min(len(r["warm"]) for r in rows)
    lines = [f"### {task}: warm vs cold start over {len(rows)} cells", "", header()]
    lines += [
        "| start | " + " | ".join(f"epoch {e + 1}" for e in range(epochs)) + " | best |",
        "|---|" + "---:|" * (epochs + 1),
    ]
    for key in ("cold", "warm"):
        mean = [sum(r[key][e] for r in rows) / len(rows) for e in range(epochs)]
        best = sum(max(r[key]) for r in rows) / len(rows)
        lines.append(
            f"| {key}: mean accuracy | " + " | ".join(f"{m:.4f}" for m in mean) + f" | {best:.4f} |"
        )
    for key in ("cold", "warm"):
        rho = ranks(rows, key)
        lines.append(f"| {key}: Spearman rho | " + " | ".join(f"{r:.2f}" for r in rho) + " | |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
