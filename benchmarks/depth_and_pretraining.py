"""Pretrained vs random init at equal budget, across freeze depths (the `digits` task).

For each (weights, freeze depth) cell, every base LR of the grid is trained with the same
epochs, schedule and seed, and the cell reports the best validation accuracy over LRs and
epochs: the same selection budget on both sides. Protocol: ../shared/BENCHMARKS.md (SGD with
Nesterov momentum 0.9, weight decay 1e-4, cosine schedule, batch 64, EfficientNet-Lite0,
32×32 inputs, grayscale repeated to 3 channels).

    python benchmarks/depth_and_pretraining.py            # k ∈ {0,3,6,11,17}, 3 LRs, 6 epochs
    python benchmarks/depth_and_pretraining.py --quick    # k ∈ {0,17}, 1 LR, 2 epochs
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from _report import header  # type: ignore[import-not-found]

from autotransfer.data import load_dataset
from autotransfer.finetune import TrialConfig, train_trial


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 1-minute smoke version")
    parser.add_argument("--depths", type=int, nargs="+", default=[0, 3, 6, 11, 17])
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.01, 0.03, 0.1])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--out", type=Path, default=Path("docs/results/depth_and_pretraining"))
    args = parser.parse_args()
    if args.quick:
        args.depths, args.lrs, args.epochs = [0, 17], [0.03], 2
    torch.set_num_threads(os.cpu_count() or 1)

    dataset = load_dataset("digits", seed=0)
    cells: list[dict[str, object]] = []
    for weights in ("DEFAULT", "none"):
        for k in args.depths:
            runs = []
            for lr in args.lrs:
                config = TrialConfig(
                    backbone="efficientnet_lite0",
                    weights=weights,
                    freeze_depth=k,
                    base_lr=lr,
                    epochs=args.epochs,
                    batch_size=64,
                    input_size=32,
                    seed=0,
                )
                start = time.perf_counter()
                result = train_trial(config, dataset)
                runs.append(
                    {
                        "lr": lr,
                        "best": result.best_val_accuracy,
                        "seconds": time.perf_counter() - start,
                        "trainable": result.trainable_parameters,
                    }
                )
                print(
                    f"weights={weights:7s} k={k:2d} lr={lr:<5} "
                    f"best={result.best_val_accuracy:.4f} ({runs[-1]['seconds']:.1f}s)",
                    flush=True,
                )
            best = max(runs, key=lambda r: r["best"])  # type: ignore[arg-type, return-value]
            cells.append(
                {
                    "weights": weights,
                    "k": k,
                    "best": best["best"],
                    "lr": best["lr"],
                    "trainable": best["trainable"],
                    "runs": runs,
                }
            )

    by = {(c["weights"], c["k"]): c for c in cells}
    lines = [
        "| freeze depth k | trainable params | pretrained (ImageNet) | random init | gap |",
        "|---:|---:|---:|---:|---:|",
    ]
    for k in args.depths:
        p, r = by[("DEFAULT", k)], by[("none", k)]
        lines.append(
            f"| {k} | {p['trainable']:,} | {p['best']:.4f} (lr {p['lr']}) | "
            f"{r['best']:.4f} (lr {r['lr']}) | {float(p['best']) - float(r['best']):+.4f} |"  # type: ignore[arg-type]
        )
    table = "\n".join(lines)
    report = (
        f"## Pretrained vs random init by freeze depth (digits, EfficientNet-Lite0, 32×32, "
        f"{args.epochs} epochs, best of LR ∈ {args.lrs})\n\n{header()}\n{table}\n"
    )
    print("\n" + report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(report)
    args.out.with_suffix(".json").write_text(json.dumps(cells, indent=2))


if __name__ == "__main__":
    main()
