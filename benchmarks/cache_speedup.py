"""Cache speedup (../shared/BENCHMARKS.md): the same trial without and with the feature cache.

For freeze depths k = 0 (linear probe), about 1/3 and about 2/3 of the blocks, it times

- the trial uncached (every epoch runs the whole network),
- the first cached trial (computes the frozen prefix's features once and stores them),
- a later cached trial of the same key read from memory, and one read from disk through a
  fresh cache object (what another worker process on the machine sees),

and checks that every run reports the same validation accuracy, epoch by epoch. Wall times
cover the whole ``train_trial`` call: building the backbone, hashing the prefix weights,
reading or computing the features, training and evaluation.

    python benchmarks/cache_speedup.py --quick            # digits, 2 epochs (a few minutes)
    python benchmarks/cache_speedup.py                    # digits, 6 epochs (protocol)
    python benchmarks/cache_speedup.py --task fmnist-1k
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import header
from _tasks import BACKBONE, INPUT_SIZE, TASKS

from autotransfer.backbones import num_blocks
from autotransfer.cache import FeatureCache
from autotransfer.data import TransferDataset
from autotransfer.finetune import TrialConfig, TrialResult, train_trial


@dataclass
class Row:
    depth: int
    uncached_s: float
    first_s: float
    later_s: float
    disk_s: float
    accuracy: float
    identical: bool


def _timed(config: TrialConfig, ds: TransferDataset, cache: FeatureCache | None):
    start = time.perf_counter()
    result = train_trial(config, ds, cache=cache)
    return time.perf_counter() - start, result


def _accuracies(result: TrialResult) -> list[float]:
    return [m.val_accuracy for m in result.history]


def measure(depth: int, ds: TransferDataset, epochs: int, lr: float, folder: Path) -> Row:
    config = TrialConfig(
        backbone=BACKBONE,
        freeze_depth=depth,
        epochs=epochs,
        base_lr=lr,
        batch_size=64,
        input_size=INPUT_SIZE,
        seed=0,
        device="cpu",
    )
    uncached_s, plain = _timed(config, ds, None)
    cache = FeatureCache(folder / f"k{depth}")
    first_s, first = _timed(config, ds, cache)
    later_s, later = _timed(config, ds, cache)
    disk_s, disk = _timed(config, ds, FeatureCache(folder / f"k{depth}"))
    want = _accuracies(plain)
    identical = all(_accuracies(r) == want for r in (first, later, disk))
    return Row(depth, uncached_s, first_s, later_s, disk_s, plain.best_val_accuracy, identical)


def table(rows: list[Row], blocks: int) -> str:
    lines = [
        "| k (trainable blocks) | uncached s | cached, first s | cached, later s | later from "
        "disk s | first ratio | later ratio | best val acc | identical acc |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.depth} of {blocks} | {r.uncached_s:.1f} | {r.first_s:.1f} | {r.later_s:.2f} "
            f"| {r.disk_s:.2f} | {r.uncached_s / r.first_s:.1f}× | {r.uncached_s / r.later_s:.1f}× "
            f"| {r.accuracy:.4f} | {'yes' if r.identical else 'NO'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=sorted(TASKS), default="digits")
    parser.add_argument("--quick", action="store_true", help="2 epochs instead of 6")
    parser.add_argument("--lr", type=float, default=0.03, help="base learning rate")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: all cores)"
    )
    parser.add_argument("--depths", type=int, nargs="*", help="default: 0, n/3 and 2n/3")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    task = TASKS[args.task]
    epochs = 2 if args.quick else task.oracle_epochs
    blocks = num_blocks(BACKBONE)
    depths = args.depths or [0, round(blocks / 3), round(2 * blocks / 3)]
    ds = task.load()
    print(
        f"{task.name}: {len(ds.train)} train / {len(ds.val)} val, {BACKBONE} ({blocks} blocks) "
        f"at {INPUT_SIZE}px, {epochs} epochs, {torch.get_num_threads()} threads",
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="cache-speedup-") as tmp:
        for depth in depths:
            row = measure(depth, ds, epochs, args.lr, Path(tmp))
            rows.append(row)
            print(
                f"k={depth}: uncached {row.uncached_s:.1f} s, cached first {row.first_s:.1f} s, "
                f"later {row.later_s:.2f} s (disk {row.disk_s:.2f} s): "
                f"{row.uncached_s / row.later_s:.1f}× after the first, accuracy "
                f"{'identical' if row.identical else 'DIFFERS'}",
                flush=True,
            )
    print()
    print(header())
    print(
        f"Task `{task.name}`, {epochs} epochs, batch 64, SGD Nesterov, lr {args.lr}, seed 0, "
        f"{torch.get_num_threads()} torch threads.\n"
    )
    print(table(rows, blocks))
    return 0 if all(r.identical for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
