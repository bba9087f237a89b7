"""``autotransfer recommend``: the rule-based recommendation, its signals and its reasons."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer

from autotransfer.cli._app import out, user_errors
from autotransfer.cli._options import (
    BackboneOpt,
    DatasetOpt,
    InputSizeOpt,
    JsonOpt,
    MaxTrainOpt,
    OnCorruptOpt,
    ThreadsOpt,
    ValFractionOpt,
    WeightsOpt,
    load_data,
)
from autotransfer.cli._report import print_recommendation, print_seeds


def recommend_cmd(
    dataset: DatasetOpt = "digits",
    backbone: BackboneOpt = "efficientnet_lite0",
    weights: WeightsOpt = "DEFAULT",
    budget: Annotated[str, typer.Option(help="limited | ample compute")] = "limited",
    input_size: InputSizeOpt = None,
    sample_size: Annotated[int, typer.Option(help="images measured against the backbone")] = 256,
    batch_size: Annotated[
        int, typer.Option(help="the batch you will train with; the LRs scale linearly with it")
    ] = 64,
    seed: Annotated[int, typer.Option(help="sample and split seed")] = 0,
    val_fraction: ValFractionOpt = 0.2,
    max_train: MaxTrainOpt = None,
    on_corrupt: OnCorruptOpt = "skip",
    threads: ThreadsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Recommend how deep to fine-tune, from the measured dataset and domain similarity."""
    import torch

    from autotransfer.recommend import check_budget, recommend

    torch.set_num_threads(threads or os.cpu_count() or 1)
    with user_errors():
        checked = check_budget(budget)
        ds = load_data(
            dataset,
            val_fraction=val_fraction,
            seed=seed,
            on_corrupt=on_corrupt,
            max_train=max_train,
        )
        rec = recommend(
            ds,
            backbone,
            weights=weights,
            input_size=input_size,
            budget=checked,
            sample_size=sample_size,
            seed=seed,
            batch_size=batch_size,
        )
    if json_out:
        out.print_json(json.dumps(rec.to_dict()))
        return
    print_recommendation(rec)
    print_seeds(rec)


def register(app: typer.Typer) -> None:
    app.command("recommend")(recommend_cmd)
