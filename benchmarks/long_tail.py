"""Skewed classes: a search driven by balanced accuracy against one driven by accuracy.

Task ``fmnist-lt`` (the long-tailed Fashion-MNIST that issue 15 proposes for
../shared/BENCHMARKS.md, defined here until it is listed there): 10 classes whose training
counts fall geometrically from 500 to 10 (500, 324, 210, 136, 88, 57, 37, 24, 15, 10; 1,401
images drawn from the training file, seed 0), a balanced validation split (50 per class)
and a balanced test split (100 per class), both drawn from the test file, disjoint, seed 0.
The data goes to an ``.npz`` with ``x_test, y_test``, so each search scores its kept model
once on the test split it never saw.

Methods, each a self-stopping autotransfer search (the procedure from the recommender's
start, decision pruner, cache) on EfficientNet-Lite0 at 32×32:

- ``newcomer``: ``autotransfer search --dataset fmnist-lt.npz`` as a newcomer runs it: the
  packaged ``default`` space, no options. The search reads the skew (50×) and optimises
  balanced accuracy, and its procedure tries the ways of handling skewed classes;
- ``accuracy``: the same with ``--objective accuracy`` (the opt-out);
- ``balanced``: the hand-configured balanced search of issue 15 (the default space with
  ``class_weighting`` and ``balanced_sampler`` searched, objective ``balanced_accuracy``).

Reported per method and seed: the chosen configuration, its validation score, on the test
split its balanced accuracy, accuracy and per-class recall, and the search cost: the search's
wall time ÷ one training run of the chosen configuration, trained alone right after as
``autotransfer train`` trains it (same epochs, the feature cache on, starting empty).

    python benchmarks/long_tail.py --seeds 3
    python benchmarks/long_tail.py --seeds 3 --methods newcomer
    python benchmarks/long_tail.py --write-task fmnist-lt.npz  # the task alone, to try it
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _report import header  # type: ignore[import-not-found]
from _tasks import BACKBONE, INPUT_SIZE  # type: ignore[import-not-found]

from autotransfer.cache import make_cache
from autotransfer.data import load_dataset
from autotransfer.finetune import TrialConfig, train_trial
from autotransfer.record import read_study
from autotransfer.search import SearchRequest, run_search, study_decision
from autotransfer.space import load_spec

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"
METHODS = ("newcomer", "accuracy", "balanced")
COUNTS = tuple(round(500 * (10 / 500) ** (c / 9)) for c in range(10))
VAL_PER_CLASS, TEST_PER_CLASS = 50, 100


def write_task(path: Path) -> None:
    """The long-tail task as an .npz: skewed train, balanced val and test (seed 0)."""
    fmnist = load_dataset("fashion-mnist")
    rng = np.random.default_rng(0)
    x, y = fmnist.train.images.numpy(), fmnist.train.labels.numpy()  # type: ignore[attr-defined]
    tx, ty = fmnist.val.images.numpy(), fmnist.val.labels.numpy()  # type: ignore[attr-defined]
    train, val, test = [], [], []
    for c, n in enumerate(COUNTS):
        train.append(rng.choice(np.flatnonzero(y == c), n, replace=False))
        pool = rng.permutation(np.flatnonzero(ty == c))
        val.append(pool[:VAL_PER_CLASS])
        test.append(pool[VAL_PER_CLASS : VAL_PER_CLASS + TEST_PER_CLASS])
    t, v, s = (np.sort(np.concatenate(parts)) for parts in (train, val, test))
    np.savez(
        path,
        x_train=x[t],
        y_train=y[t],
        x_val=tx[v],
        y_val=ty[v],
        x_test=tx[s],
        y_test=ty[s],
        class_names=np.array(fmnist.class_names, dtype=str),
    )


def balanced_spec() -> dict[str, Any]:
    spec = load_spec("default").model_dump(mode="json")
    spec["name"] = "default-balanced"
    spec["parameters"]["class_weighting"] = {
        "type": "categorical",
        "choices": ["none", "sqrt_inverse", "inverse"],
    }
    spec["parameters"]["balanced_sampler"] = {"type": "bool"}
    spec["budget"]["objective"] = "balanced_accuracy"
    return spec


def run(method: str, data: Path, seed: int, folder: Path) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "dataset": str(data),
        "backbone": BACKBONE,
        "input_size": INPUT_SIZE,
        "seed": seed,
        "split_seed": 0,
        "device": "cpu",
        "storage": f"sqlite:///{folder}/{method}-{seed}.db",
        "study_name": f"{method}-{seed}",
    }
    if method == "balanced":
        fields["spec"] = balanced_spec()
    else:
        fields["space"] = "default"
    if method == "accuracy":
        fields["objective"] = "accuracy"
    start = time.perf_counter()
    study = run_search(SearchRequest.model_validate(fields))
    wall = time.perf_counter() - start
    decision = study_decision(study)
    assert decision is not None
    info = read_study(study)
    config = study.trials[decision.chosen_trial].user_attrs.get("config")
    with tempfile.TemporaryDirectory() as cache_dir:
        dataset = load_dataset(data, seed=0)
        begin = time.perf_counter()
        train_trial(TrialConfig(**config), dataset, cache=make_cache(True, cache_dir))
        one_run = time.perf_counter() - begin
    test = info.test or {}
    report = test.get("class_report") or {}
    return {
        "method": method,
        "seed": seed,
        "trials": len(study.trials),
        "chosen": decision.chosen_params,
        "val_metric": decision.metric,
        "val_score": decision.chosen_score,
        "test_balanced_accuracy": (test.get("metrics") or {}).get("balanced_accuracy"),
        "test_accuracy": test.get("accuracy"),
        "test_recall": report.get("recall"),
        "wall_s": wall,
        "one_run_s": one_run,
        "search_cost": wall / one_run,
        "stop_reason": info.stop_reason,
    }


def table(rows: list[dict[str, Any]], classes: list[str]) -> list[str]:
    lines = [
        "| method | seed | trials | chosen k | weighting | balanced sampler | val score "
        "| test balanced acc | test acc | wall s | search cost |",
        "|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        c = r["chosen"]
        lines.append(
            f"| {r['method']} | {r['seed']} | {r['trials']} | {c.get('freeze_depth')} "
            f"| {c.get('class_weighting', 'none')} | {c.get('balanced_sampler', False)} "
            f"| {r['val_metric']} {r['val_score']:.4f} | {r['test_balanced_accuracy']:.4f} "
            f"| {r['test_accuracy']:.4f} | {r['wall_s']:.0f} | {r['search_cost']:.2f} |"
        )
    lines += ["", "Test recall per class (training images per class in brackets):", ""]
    lines.append(
        "| method | seed | "
        + " | ".join(f"{n} ({k})" for n, k in zip(classes, COUNTS, strict=True))
        + " |"
    )
    lines.append("|---|---:|" + "---:|" * len(classes))
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['seed']} | "
            + " | ".join(f"{v:.2f}" for v in r["test_recall"])
            + " |"
        )
    lines += [
        "",
        "| method | median test balanced accuracy | median test accuracy | median search cost "
        "| rarest class recalled in every seed |",
    ]
    lines.append("|---|---:|---:|---:|---|")
    for method in METHODS:
        mine = [r for r in rows if r["method"] == method]
        if not mine:
            continue
        lines.append(
            f"| {method} | {statistics.median(r['test_balanced_accuracy'] for r in mine):.4f} "
            f"| {statistics.median(r['test_accuracy'] for r in mine):.4f} "
            f"| {statistics.median(r['search_cost'] for r in mine):.2f} "
            f"| {all(r['test_recall'][-1] > 0 for r in mine)} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--out", type=Path, default=RESULTS / "long_tail")
    parser.add_argument(
        "--write-task", type=Path, help="only write the task's .npz to this path and stop"
    )
    args = parser.parse_args()
    if args.write_task is not None:
        write_task(args.write_task)
        return
    torch.set_num_threads(os.cpu_count() or 1)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = folder / "fmnist-lt.npz"
        write_task(data)
        classes = list(load_dataset(data).class_names)
        for seed in range(args.seeds):
            for method in args.methods:
                rows.append(run(method, data, seed, folder))
                print(json.dumps(rows[-1]), flush=True)
                args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    text = "\n".join(
        [
            "## Skewed classes: balanced accuracy against accuracy (fmnist-lt)",
            "",
            header(),
            *table(rows, classes),
            "",
        ]
    )
    args.out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
