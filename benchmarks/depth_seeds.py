"""How often a search's first trial reaches the target, by freeze depth and training seed.

A self-stopping search reaches the target (within 1 point of the oracle best) in about one
training run only if its *first* trial does: the recommended configuration. This trains
that configuration as the search's first trial trains it (the packaged ``default`` space,
the recommender's learning rates, the trainer's defaults for the rest, the feature cache)
at the depths around the recommendation and with training seeds 0…N−1, and reports each
accuracy against the task's target. The ``small-different-limited`` rule's depth and the
order of its depth neighbours rest on this table (``autotransfer/recommend/_rules.py``).

    python benchmarks/depth_seeds.py --tasks digits fmnist-1k --depths 10 11 12 13 --seeds 3
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import torch
from _report import header  # type: ignore[import-not-found]
from _tasks import BACKBONE, INPUT_SIZE, TASKS  # type: ignore[import-not-found]
from oracle import best_cell, load_oracle  # type: ignore[import-not-found]

from autotransfer.cache import make_cache
from autotransfer.finetune import train_trial
from autotransfer.search import SearchRequest, prepare, recommend_seeds
from autotransfer.space import fit_to_space

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"
TARGET_POINTS = 0.01


def first_trial_accuracy(task: str, depth: int, seed: int, cache_dir: str) -> float:
    """Best validation accuracy of the search's first trial with its depth set to ``depth``."""
    t = TASKS[task]
    request = SearchRequest(
        dataset=t.dataset,
        max_train=t.max_train,
        max_val=t.max_val,
        backbone=BACKBONE,
        space="default",
        max_epochs=t.oracle_epochs,
        seed=seed,
        split_seed=0,
        input_size=INPUT_SIZE,
        device="cpu",
    )
    prepared = prepare(request)
    first = recommend_seeds(prepared).seeds[0]
    # what the study stores of the seed: its values of the space's parameters
    params = fit_to_space(prepared.spec, prepared.num_blocks, first.params)
    config = prepared.trial_config({**params, "freeze_depth": depth})
    result = train_trial(config, prepared.dataset, cache=make_cache(True, cache_dir))
    return result.best_val_accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=["digits"])
    parser.add_argument("--depths", type=int, nargs="+", default=[10, 11, 12, 13])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "depth_seeds")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)  # BENCHMARKS.md: threads = cores

    table: dict[str, dict[str, list[float]]] = {}
    lines = ["## The first trial by depth and training seed", "", header()]
    for task in args.tasks:
        target = best_cell(load_oracle(task))["best"] - TARGET_POINTS
        table[task] = {}
        lines += [
            f"### {task} (target {target:.4f})",
            "",
            "| k | " + " | ".join(f"seed {s}" for s in range(args.seeds)) + " | reached |",
            "|---:|" + "---:|" * (args.seeds + 1),
        ]
        with tempfile.TemporaryDirectory() as cache_dir:
            for k in args.depths:
                accs = [first_trial_accuracy(task, k, s, cache_dir) for s in range(args.seeds)]
                table[task][str(k)] = accs
                reached = sum(a >= target - 1e-12 for a in accs)
                lines.append(
                    f"| {k} | "
                    + " | ".join(f"{a:.4f}" for a in accs)
                    + f" | {reached}/{len(accs)} |"
                )
                print(lines[-1], flush=True)
                args.out.with_suffix(".json").write_text(json.dumps(table, indent=1))
        lines.append("")
    args.out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
