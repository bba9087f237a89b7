"""Fit and check the decision pruner's slack on warm-started grid cells (no training).

The pruner (``autotransfer/search/_policy.py``) projects a trial's final accuracy as its
accuracy after epoch e plus what the chosen configuration gained from epoch e to its end,
plus a slack for curves that catch up. This reads the warm-started cells that
``benchmarks/warm_start.py`` stored, and for every pair of cells (a trial T, a reference c
that is within two points of the best cell, as the chosen configuration is; T ending no more
than the tolerance below c, so that it could change the decision) measures how far T's final
accuracy ended above that projection without slack:

    catch-up(e) = (best_T − best_c) − (acc_T(e) − acc_c(e))

The slack at e / E must cover the catch-ups of the fit tasks (their maximum, rounded up);
the held-out task then shows how many of its pairs the fitted slack would have misjudged
(pruned a trial that ended above the reference by more than the tolerance).

    python benchmarks/calibrate_pruner.py --fit digits fmnist-1k --check fmnist-20k
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"
TOLERANCE = 0.005


def cells(task: str, start: str) -> list[dict[str, Any]]:
    """The task's cells as ``{"curve": accuracy per epoch}``: warm-started ones from
    ``warm_start.py``, or cold ones from the whole oracle grid."""
    name = f"warm_start-{task}.json" if start == "warm" else f"oracle-{task}.json"
    path = RESULTS / name
    if not path.is_file():
        script = "warm_start.py" if start == "warm" else "oracle.py"
        raise SystemExit(
            f"no {start} cells for {task}: run `python benchmarks/{script} --task {task}`"
        )
    rows = json.loads(path.read_text())["cells"]
    key = "warm" if start == "warm" else "per_epoch"
    return [{"curve": r[key]} for r in rows if r["k"] > 0]


def catch_ups(rows: list[dict[str, Any]]) -> dict[float, list[float]]:
    """Catch-up of every (T, good reference c) pair, by progress e / E."""
    top = max(max(r["curve"]) for r in rows)
    references = [r for r in rows if max(r["curve"]) >= top - 0.02]
    out: dict[float, list[float]] = {}
    for c in references:
        epochs = len(c["curve"])
        for t in rows:
            if t is c or max(t["curve"]) < max(c["curve"]) - TOLERANCE:
                continue  # a trial that ends below the reference cannot change the decision
            for e in range(1, epochs):
                gap_end = max(t["curve"]) - max(c["curve"])
                gap_now = t["curve"][e - 1] - c["curve"][e - 1]
                out.setdefault(round(e / epochs, 3), []).append(gap_end - gap_now)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", nargs="+", default=["digits", "fmnist-1k"])
    parser.add_argument("--check", nargs="*", default=[])
    parser.add_argument("--start", choices=["warm", "cold"], default="cold")
    args = parser.parse_args()
    fitted: dict[float, float] = {}
    print("| task | e / E | pairs | max catch-up | 95th percentile |")
    print("|---|---:|---:|---:|---:|")
    for task in args.fit:
        for progress, values in sorted(catch_ups(cells(task, args.start)).items()):
            values.sort()
            p95 = values[min(len(values) - 1, math.ceil(0.95 * len(values)) - 1)]
            fitted[progress] = max(fitted.get(progress, 0.0), values[-1])
            print(f"| {task} | {progress:.2f} | {len(values)} | {values[-1]:+.4f} | {p95:+.4f} |")
    print("\nslack to cover every fit pair (max over the fit tasks, by e / E):")
    for progress, value in sorted(fitted.items()):
        print(f"  e/E <= {progress:.2f}: {math.ceil(max(value, 0.0) * 1000) / 1000:.3f}")
    from autotransfer.search._policy import slack  # the shipped constants

    for task in args.check:
        missed = total = 0
        for progress, values in catch_ups(cells(task, args.start)).items():
            total += len(values)
            missed += sum(v > slack(progress) + TOLERANCE for v in values)
        print(
            f"held out {task}: {missed} of {total} pairs caught up by more than the shipped "
            f"slack + tolerance"
        )


if __name__ == "__main__":
    main()
