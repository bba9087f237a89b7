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
    python benchmarks/long_tail.py --handling  # the ways of handling skew, each trained alone

``--handling`` calibrates the procedure's ``IMBALANCE`` order and the recommender's start on
skewed data: each way of handling the skew (balanced sampler, sqrt-inverse and inverse loss
weights, none) trained alone, three seeds, at the recommender's configuration, at feature
extraction (k = 0, the procedure's baseline) and at k = 12, LR 0.1 where the recommender
starts elsewhere, on fmnist-lt (the fit) and on **digits-lt** (held out): scikit-learn's
digits with training counts falling geometrically from 110 to 6 (18×, 383 images), balanced
validation and test splits of 30 a class, seed 0.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from autotransfer.data import load_dataset, load_test_split
from autotransfer.finetune import TrialConfig, evaluate, fit, train_trial
from autotransfer.recommend import recommend
from autotransfer.record import read_study
from autotransfer.search import SearchRequest, run_search, study_decision
from autotransfer.space import load_spec

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"
METHODS = ("newcomer", "accuracy", "balanced")
COUNTS = tuple(round(500 * (10 / 500) ** (c / 9)) for c in range(10))
VAL_PER_CLASS, TEST_PER_CLASS = 50, 100


def _save(
    path: Path,
    train_pool: tuple[np.ndarray, np.ndarray],
    held_pool: tuple[np.ndarray, np.ndarray],
    picks: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]],
    class_names: list[str],
) -> None:
    """An .npz of the picked train images (from ``train_pool``) and val and test images (from
    ``held_pool``), each split in index order."""
    t, v, s = (np.sort(np.concatenate(parts)) for parts in picks)
    (x, y), (hx, hy) = train_pool, held_pool
    np.savez(
        path,
        x_train=x[t],
        y_train=y[t],
        x_val=hx[v],
        y_val=hy[v],
        x_test=hx[s],
        y_test=hy[s],
        class_names=np.array(class_names, dtype=str),
    )


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
    _save(path, (x, y), (tx, ty), (train, val, test), list(fmnist.class_names))


def write_digits_task(path: Path) -> None:
    """digits-lt as an .npz: skewed train (110 down to 6), balanced val and test (seed 0)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images * 255 / 16).round().astype(np.uint8)
    y = digits.target
    rng = np.random.default_rng(0)
    counts = [round(110 * (6 / 110) ** (c / 9)) for c in range(10)]
    train, val, test = [], [], []
    for c, n in enumerate(counts):
        pool = rng.permutation(np.flatnonzero(y == c))
        val.append(pool[:30])
        test.append(pool[30:60])
        train.append(pool[60 : 60 + n])
    _save(path, (x, y), (x, y), (train, val, test), [str(c) for c in range(10)])


HANDLING = {
    "balanced sampler": {"class_weighting": "none", "balanced_sampler": True},
    "sqrt_inverse": {"class_weighting": "sqrt_inverse", "balanced_sampler": False},
    "inverse": {"class_weighting": "inverse", "balanced_sampler": False},
    "none": {"class_weighting": "none", "balanced_sampler": False},
}


def handling(folder: Path, seeds: int, only: list[str]) -> list[str]:
    """Each way of handling the skew trained alone (see the module docstring): a table."""
    writers = {"fmnist-lt (fit)": write_task, "digits-lt (held out)": write_digits_task}
    tasks = {name: folder / f"task{i}.npz" for i, name in enumerate(writers) if name[:6] in only}
    for name, path in tasks.items():
        writers[name](path)
    lines = [
        "| task | configuration | handling | val balanced acc (seeds) | test balanced acc "
        "(seeds) | median test | rarest class test recall (seeds) |",
        "|---|---|---|---|---|---:|---|",
    ]
    cache = make_cache(True, folder / "cache")
    for name, path in tasks.items():
        dataset = load_dataset(path, seed=0)
        test = load_test_split(path, dataset, test_fraction=None)
        assert test is not None
        on_test = dataclasses.replace(dataset, val=test)
        rec = recommend(dataset, BACKBONE, input_size=INPUT_SIZE, seed=0)
        start = {k: v for k, v in rec.config_params().items() if k not in HANDLING["none"]}
        places = {f"the recommender's (k = {rec.freeze_depth}, LR {rec.base_lr:g})": start}
        if rec.freeze_depth > 0:
            places["feature extraction (k = 0)"] = {**start, "freeze_depth": 0}
        else:  # a fine-tune too: the "different" rule's (its head at the base LR)
            fine_tune = {"freeze_depth": 12, "base_lr": 0.1, "head_lr_mult": 1.0}
            places["k = 12, LR 0.1, head ×1"] = {**start, **fine_tune}
        for where, params in places.items():
            for label, option in HANDLING.items():
                val, tested, rare = [], [], []
                for seed in range(seeds):
                    config = TrialConfig(
                        **{**params, **option},
                        backbone=BACKBONE,
                        input_size=INPUT_SIZE,
                        batch_size=64,
                        metric="balanced_accuracy",
                        device="cpu",
                        seed=seed,
                    )
                    result, network = fit(config, dataset, cache=cache, keep_best=True)
                    scores, report = evaluate(network, config, on_test)
                    val.append(result.best_val_score)
                    tested.append(scores.value("balanced_accuracy"))
                    rare.append(report["recall"][-1])  # type: ignore[index]
                lines.append(
                    f"| {name} | {where} | {label} | {' / '.join(f'{v:.3f}' for v in val)} | "
                    f"{' / '.join(f'{v:.3f}' for v in tested)} | "
                    f"{statistics.median(tested):.3f} | {' / '.join(f'{v:.2f}' for v in rare)} |"
                )
                print(lines[-1], flush=True)
    return lines


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
    parser.add_argument(
        "--handling",
        action="store_true",
        help="train each way of handling the skew alone instead (the IMBALANCE calibration)",
    )
    parser.add_argument(
        "--handling-tasks", nargs="+", default=["fmnist", "digits"], choices=["fmnist", "digits"]
    )
    args = parser.parse_args()
    if args.write_task is not None:
        write_task(args.write_task)
        return
    torch.set_num_threads(os.cpu_count() or 1)
    if args.handling:
        with tempfile.TemporaryDirectory() as tmp:
            lines = handling(Path(tmp), max(args.seeds, 3), args.handling_tasks)
        text = "\n".join(["## Skewed classes: each way of handling them", "", header(), *lines])
        RESULTS.joinpath("long_tail_handling.md").write_text(text + "\n")
        print(text)
        return
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
