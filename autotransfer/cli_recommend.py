"""``autotransfer recommend``: the rule-based recommendation, its signals and its reasons."""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import typer
from rich.table import Table

from autotransfer.cli import DatasetOpt, OnCorrupt, _load, app, out, user_errors


def print_recommendation(rec: dict[str, Any]) -> None:
    """The human-readable form of ``Recommendation.to_dict()`` (also used by ``studies show``)."""
    k, n = rec["freeze_depth"], rec["num_blocks"]
    lp_ft = f", first {rec['lp_ft_epochs']} epochs head only" if rec["lp_ft_epochs"] else ""
    out.print(
        f"[bold]recommendation[/] for {rec['backbone']} on {rec['dataset']} "
        f"(budget {rec['budget']}): [bold]{rec['strategy']}[/], freeze depth k = {k} of {n} "
        f"blocks, base LR {rec['base_lr']:g} (head ×{rec['head_lr_mult']:g}), "
        f"{rec['optimizer'].upper()} momentum {rec['momentum']:g}"
        f"{' Nesterov' if rec['nesterov'] else ''}, {rec['epochs']} epochs{lp_ft}",
        highlight=False,
    )
    s = rec["signals"]
    shift = f"{s['bn_shift']:.3f}" if s["bn_shift"] is not None else "n/a (no BatchNorm)"
    probes = ", ".join(
        f"block {c}: {a:.3f}" for c, a in zip(s["probe_cuts"], s["probe_accuracy"], strict=True)
    )
    out.print(
        f"signals ({s['sample_size']} images, {s['seconds']:.1f} s): similarity "
        f"{rec['similarity']:.3f}, BatchNorm shift {shift}, probe gain {s['probe_gain']:.3f}, "
        f"linear probe {probes} (majority class {s['chance']:.3f})",
        highlight=False,
    )
    out.print("reasons:", highlight=False)
    for reason in rec["reasons"]:
        out.print(f"  - {reason}", highlight=False)
    ranges = ", ".join(f"{name} {lo:g}…{hi:g}" for name, (lo, hi) in rec["search_range"].items())
    out.print(f"narrowed search range: {ranges}", highlight=False)


def print_study_recommendation(study: Any) -> None:
    """For ``studies show``: the study's stored recommendation, short, and its audit."""
    rec = study.user_attrs.get("recommendation")
    if not rec:
        return
    out.print(
        f"recommender: {rec['strategy']} at k = {rec['freeze_depth']}, base LR "
        f"{rec['base_lr']:g} (rule {rec['rule']!r}, similarity {rec['similarity']:.3f}, "
        f"{rec['profile']['num_train']:,} training images, budget {rec['budget']})",
        highlight=False,
    )
    audit = study.user_attrs.get("recommendation_audit")
    if not audit:
        return
    if audit["rank"] is None:
        verdict = f"did not complete ({audit['state'].lower()})"
    else:
        verdict = (
            f"ranked {audit['rank']} of {audit['of']} completed trials, accuracy "
            f"{audit['recommended_accuracy']:.4f}, {audit['gap'] * 100:.2f} points below the best"
        )
    line = f"audit: recommended trial #{audit['recommended_trial']} {verdict}"
    if audit.get("best_seed_rank") is not None:
        line += (
            f"; best recommender seed #{audit['best_seed_trial']} ranked "
            f"{audit['best_seed_rank']}, {audit['best_seed_gap'] * 100:.2f} points below"
        )
    out.print(line, highlight=False)


def print_seeds(rec: dict[str, Any]) -> None:
    table = Table("seed", "freeze depth", "base LR", "head ×", title="seeds", title_justify="left")
    for i, seed in enumerate(rec["seeds"]):
        label = "recommended" if i == 0 else "neighbour"
        table.add_row(
            label, str(seed["freeze_depth"]), f"{seed['base_lr']:g}", f"{seed['head_lr_mult']:g}"
        )
    out.print(table)


@app.command("recommend")
def recommend_cmd(
    dataset: DatasetOpt = "digits",
    backbone: Annotated[str, typer.Option("--backbone", "-b")] = "efficientnet_lite0",
    weights: Annotated[
        str, typer.Option(help="DEFAULT, a torchvision weight name, none, or a .pth file")
    ] = "DEFAULT",
    budget: Annotated[str, typer.Option(help="limited | ample compute")] = "limited",
    input_size: Annotated[
        int | None, typer.Option(help="square input side; default from the data's resolution")
    ] = None,
    sample_size: Annotated[int, typer.Option(help="images measured against the backbone")] = 256,
    batch_size: Annotated[
        int, typer.Option(help="the batch you will train with; the LRs scale linearly with it")
    ] = 64,
    seed: int = 0,
    val_fraction: float = 0.2,
    max_train: int | None = None,
    on_corrupt: OnCorrupt = OnCorrupt.skip,
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: all cores)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Recommend how deep to fine-tune, from the measured dataset and domain similarity."""
    import torch

    from autotransfer.recommend import check_budget, recommend

    torch.set_num_threads(threads or os.cpu_count() or 1)
    with user_errors():
        checked = check_budget(budget)
        ds = _load(dataset, val_fraction, seed, max_train, None, on_corrupt)
        rec = recommend(
            ds,
            backbone,
            weights=weights,
            input_size=input_size,
            budget=checked,
            sample_size=sample_size,
            seed=seed,
            batch_size=batch_size,
        ).to_dict()
    if json_out:
        out.print_json(json.dumps(rec))
        return
    print_recommendation(rec)
    print_seeds(rec)
