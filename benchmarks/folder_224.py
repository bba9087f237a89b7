"""A 224-px search on an image folder: the estimate line against the measured trial times,
and what the feature cache stored, kept in memory or skipped under its budgets.

Task ``fmnist-folder-300``: no high-resolution image set can be had offline here, so the
folder holds Fashion-MNIST images (the Debian package) written as 300×300 RGB PNGs, with
the skew of issue 15's inspection folder scaled down (4 classes, T-shirt / trouser /
pullover / dress, 188 / 89 / 37 / 13 training images; 20 per class in val/ and test/, all
drawn with seed 0). Decoding cost is a real 300-px PNG's; the network's cost at 224 px does
not depend on what the pixels show.

The search is what ``autotransfer search`` runs (recommender seeds, the estimate before the
first trial, the feature cache beside the study), with the packaged ``default`` space on
EfficientNet-Lite0 at the size it picks for 300-px images (224), ``--stop trials``, a few
trials of at most ``--max-epochs`` epochs, and a small disk budget for the cache.

    python benchmarks/folder_224.py --trials 4 --max-epochs 3 --cache-disk-gb 0.25
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _report import header  # type: ignore[import-not-found]
from PIL import Image

from autotransfer.cache import FeatureCache
from autotransfer.data import load_dataset
from autotransfer.record import read_study
from autotransfer.search import (
    SearchRequest,
    estimate,
    prepare,
    recommend_seeds,
    run_search,
    study_decision,
)

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"
CLASSES = (0, 1, 2, 3)
TRAIN_COUNTS = (188, 89, 37, 13)
HELD_PER_CLASS = 20
SIDE = 300


def write_folder(root: Path) -> None:
    fmnist = load_dataset("fashion-mnist")
    names = fmnist.class_names
    rng = np.random.default_rng(0)
    x, y = fmnist.train.images.numpy(), fmnist.train.labels.numpy()  # type: ignore[attr-defined]
    tx, ty = fmnist.val.images.numpy(), fmnist.val.labels.numpy()  # type: ignore[attr-defined]
    for c, count in zip(CLASSES, TRAIN_COUNTS, strict=True):
        name = names[c].replace("/", "-")
        held = rng.permutation(np.flatnonzero(ty == c))
        splits = {
            "train": x[rng.choice(np.flatnonzero(y == c), count, replace=False)],
            "val": tx[held[:HELD_PER_CLASS]],
            "test": tx[held[HELD_PER_CLASS : 2 * HELD_PER_CLASS]],
        }
        for split, images in splits.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i, pixels in enumerate(images):
                img = Image.fromarray(pixels[0]).convert("RGB").resize((SIDE, SIDE))
                img.save(folder / f"{i:04d}.png")


class _Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--max-epochs", type=int, default=3)
    parser.add_argument("--cache-disk-gb", type=float, default=0.25)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    messages = _Messages()
    logging.getLogger("autotransfer").addHandler(messages)
    logging.getLogger("autotransfer").setLevel(logging.INFO)
    with tempfile.TemporaryDirectory(prefix="folder224-") as tmp:
        root = Path(tmp) / "fmnist-folder-300"
        write_folder(root)
        request = SearchRequest(
            dataset=str(root),
            space="default",
            stop="trials",
            trials=args.trials,
            max_epochs=args.max_epochs,
            storage=f"sqlite:///{tmp}/study.db",
            study_name="folder-224",
            device="cpu",
            threads=args.threads,
            cache_disk_gb=args.cache_disk_gb,
        )
        start = time.perf_counter()
        prepared = prepare(request)
        seeding = recommend_seeds(prepared)
        line = estimate(prepared, seeding.seeds[0].params)
        before_trials = time.perf_counter()
        study = run_search(request, prepared=prepared, seeding=seeding)
        end = time.perf_counter()
        store = FeatureCache(Path(tmp) / "study-features").disk
        assert store is not None
        stored = {"entries": len(store.digests()), "bytes": store.nbytes()}
        decision = study_decision(study)
        info = read_study(study)
    trials: list[dict[str, Any]] = []
    for t in study.trials:
        wall = (t.datetime_complete - t.datetime_start).total_seconds()  # type: ignore[operator]
        trials.append(
            {
                "number": t.number,
                "state": t.state.name,
                "freeze_depth": t.params.get("freeze_depth"),
                "augment": t.params.get("augment"),
                "epochs": len(t.intermediate_values),
                "value": t.value,
                "wall_s": wall,
            }
        )
    cache_lines = [m for m in messages.lines if m.startswith("feature cache")]
    result = {
        "task": "fmnist-folder-300",
        "input_size": prepared.input_size,
        "images": {"train": len(prepared.dataset.train), "val": len(prepared.dataset.val)},
        "estimate": line.line(),
        "estimate_trial_s": line.trial_s,
        "estimate_k": line.freeze_depth,
        "prepare_and_estimate_s": before_trials - start,
        "search_s": end - before_trials,
        "trials": trials,
        "cache_disk_budget_gib": args.cache_disk_gb,
        "cache_stored": stored,
        "cache_messages": cache_lines,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "chosen": decision.chosen_params if decision else None,
        "val_accuracy": decision.chosen_score if decision else None,
        "test": {k: (info.test or {}).get(k) for k in ("metric", "score", "images")},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "folder_224.json").write_text(json.dumps(result, indent=1, default=str))
    lines = [
        "# A 224-px folder search (issue 15)",
        "",
        header(),
        f"Folder: {result['images']['train']} training and {result['images']['val']} "
        f"validation PNGs of {SIDE}×{SIDE} (Fashion-MNIST upscaled), input "
        f"{prepared.input_size} px, EfficientNet-Lite0, packaged `default` space.",
        "",
        f"Printed before the first trial: `{line.line()}`",
        "",
        "| trial | k | augment | epochs | state | val accuracy | wall s |",
        "|---:|---:|---|---:|---|---:|---:|",
    ]
    for t in trials:
        value = f"{t['value']:.4f}" if t["value"] is not None else "-"
        lines.append(
            f"| {t['number']} | {t['freeze_depth']} | {t['augment']} | {t['epochs']} "
            f"| {t['state']} | {value} | {t['wall_s']:.0f} |"
        )
    lines += [
        "",
        f"Search {result['search_s']:.0f} s after {result['prepare_and_estimate_s']:.0f} s of "
        f"loading, recommending and estimating; peak RSS {result['peak_rss_gib']:.1f} GiB.",
        f"Feature cache under a {args.cache_disk_gb} GiB disk budget: {stored['entries']} "
        f"set(s) on disk, {stored['bytes'] / 2**20:.1f} MiB.",
        "",
        *(f"- {m}" for m in cache_lines),
    ]
    (RESULTS / "folder_224.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
