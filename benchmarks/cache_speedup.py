"""Cache speedup (../shared/BENCHMARKS.md): the same trial without and with the feature cache.

For freeze depths k = 0 (linear probe), about 1/3 and about 2/3 of the blocks, it times

- the trial uncached (every epoch runs the whole network),
- the first cached trial (computes the frozen prefix's features once and stores them),
- a later cached trial of the same key read from memory, and one read from disk through a
  fresh cache object (what another worker process on the machine sees),

and checks that every run reports the same validation accuracy, epoch by epoch. Wall times
cover the whole ``train_trial`` call: building the backbone, hashing the prefix weights,
reading or computing the features, training and evaluation. On a shared machine wall time
swings with the other work; the process's CPU time (one torch thread: ``--threads 1``) is the
steadier measure, so both are printed.

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


@dataclass(frozen=True)
class Timing:
    wall_s: float
    cpu_s: float

    def __str__(self) -> str:
        return f"{self.wall_s:.2f} ({self.cpu_s:.2f})"


@dataclass
class Row:
    depth: int
    uncached: Timing
    first: Timing
    later: Timing
    disk: Timing
    accuracy: float
    identical: bool


def _timed(
    config: TrialConfig, ds: TransferDataset, cache: FeatureCache | None
) -> tuple[Timing, TrialResult]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = train_trial(config, ds, cache=cache)
    return Timing(time.perf_counter() - wall, time.process_time() - cpu), result


def _ratio(slow: Timing, fast: Timing) -> str:
    return f"{slow.wall_s / fast.wall_s:.1f}× ({slow.cpu_s / fast.cpu_s:.1f}×)"


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
    uncached, plain = _timed(config, ds, None)
    cache = FeatureCache(folder / f"k{depth}")
    first_t, first = _timed(config, ds, cache)
    later_t, later = _timed(config, ds, cache)
    disk_t, disk = _timed(config, ds, FeatureCache(folder / f"k{depth}"))
    want = _accuracies(plain)
    identical = all(_accuracies(r) == want for r in (first, later, disk))
    return Row(depth, uncached, first_t, later_t, disk_t, plain.best_val_accuracy, identical)


def table(rows: list[Row], blocks: int) -> str:
    lines = [
        "Seconds as wall (CPU). Ratios: uncached ÷ cached, wall (CPU).\n",
        "| k trainable | uncached | cached, first | cached, later | later, from disk "
        "| ratio first | ratio later | best val acc | same acc |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.depth} of {blocks} | {r.uncached} | {r.first} | {r.later} | {r.disk} "
            f"| {_ratio(r.uncached, r.first)} | {_ratio(r.uncached, r.later)} "
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
                f"k={depth}: wall (CPU) s: uncached {row.uncached}, cached first {row.first}, "
                f"later {row.later}, later from disk {row.disk}; after the first "
                f"{_ratio(row.uncached, row.later)} faster; accuracy "
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
