"""The benchmark scripts' pure helpers, on small synthetic grids (no training)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import oracle
import recommender


def _cell(k: int, lr: float, per_epoch: list[float], best: float | None = None) -> dict:
    return {"k": k, "lr": lr, "per_epoch": per_epoch, "best": best or max(per_epoch)}


def test_rank_correlation_per_epoch_over_trained_cells() -> None:
    grid = {
        "cells": [
            # best = last epoch here: epoch 1 ranks them backwards, epochs 2 and 3 right
            _cell(1, 0.01, [0.9, 0.5, 0.6], best=0.6),
            _cell(2, 0.01, [0.8, 0.6, 0.7], best=0.7),
            _cell(3, 0.01, [0.7, 0.7, 0.8], best=0.8),
            _cell(0, 0.01, [0.0, 0.99, 0.3]),  # k = 0 (head only) is left out
        ]
    }
    rows = oracle.rank_correlation(grid)
    assert [(e, n) for e, _, n in rows] == [(1, 3), (2, 3), (3, 3)]
    assert rows[0][1] == pytest.approx(-1.0)
    assert rows[1][1] == pytest.approx(1.0)
    assert rows[2][1] == pytest.approx(1.0)


def test_subset_grid_reads_the_nearest_depth_and_lr() -> None:
    grid = {
        "task": "fmnist-20k",
        "cells": [_cell(k, lr, [0.5 + k / 100]) for k in (0, 7, 11) for lr in (0.03, 0.1)],
    }
    # 9 is equidistant from 7 and 11: the shallower grid depth; 0.04 is nearest 0.03 on a log scale
    assert recommender.cell(grid, 9, 0.04)["k"] == 7
    assert recommender.cell(grid, 9, 0.04)["lr"] == 0.03
    assert recommender.cell(grid, 10, 0.08)["k"] == 11
    assert recommender.cell(grid, 10, 0.08)["lr"] == 0.1
    # depth rank reads the recommended depth at its grid depth: 9 → 7, second of three
    assert recommender.depth_rank(grid, 9) == (2, 3)
