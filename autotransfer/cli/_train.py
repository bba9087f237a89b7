"""``autotransfer backbones``, ``profile`` and ``train``: the registry, a dataset, one run."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from autotransfer.cli._app import console, out, user_errors
from autotransfer.cli._options import (
    BackboneOpt,
    DatasetOpt,
    InputSizeOpt,
    JsonOpt,
    MetricName,
    OnCorruptOpt,
    Optimizer,
    ThreadsOpt,
    ValFractionOpt,
    Weighting,
    WeightsOpt,
    load_data,
)


def backbones_cmd() -> None:
    """List the registered backbones with their block counts and weights."""
    from autotransfer.backbones import get_family, list_backbones, num_blocks

    table = Table("backbone", "family", "blocks", "weights")
    for name in list_backbones():
        family = get_family(name)
        table.add_row(
            name, family.name, str(num_blocks(name)), ", ".join(family.weight_names(name))
        )
    out.print(table)


def profile_cmd(
    dataset: DatasetOpt = "digits",
    val_fraction: ValFractionOpt = 0.2,
    seed: Annotated[int, typer.Option(help="train/validation split seed")] = 0,
    on_corrupt: OnCorruptOpt = "skip",
) -> None:
    """Print a dataset's profile (sizes, classes, resolution, channels) as JSON."""
    with user_errors():
        ds = load_data(dataset, val_fraction=val_fraction, seed=seed, on_corrupt=on_corrupt)
    out.print_json(json.dumps(ds.profile().to_dict()))


def train_cmd(
    dataset: DatasetOpt = "digits",
    backbone: BackboneOpt = "efficientnet_lite0",
    weights: WeightsOpt = "DEFAULT",
    freeze_depth: Annotated[
        int, typer.Option("--freeze-depth", "-k", help="top k blocks trainable; 0 = head only")
    ] = 0,
    epochs: Annotated[int, typer.Option(help="training epochs")] = 6,
    lr: Annotated[float, typer.Option("--lr", help="base learning rate (top block)")] = 0.01,
    layer_decay: Annotated[float, typer.Option(help="LR factor per block downwards")] = 1.0,
    head_lr_mult: Annotated[float, typer.Option(help="the head's LR as a multiple of --lr")] = 1.0,
    optimizer: Annotated[Optimizer, typer.Option(help="optimizer")] = "sgd",
    momentum: Annotated[float, typer.Option(help="SGD momentum")] = 0.9,
    nesterov: Annotated[bool, typer.Option(help="SGD with Nesterov momentum")] = True,
    weight_decay: Annotated[float, typer.Option(help="weight decay")] = 1e-4,
    warmup_epochs: Annotated[float, typer.Option(help="linear LR warmup, in epochs")] = 0.0,
    batch_size: Annotated[int, typer.Option(help="images per step")] = 64,
    dropout: Annotated[float, typer.Option(help="dropout before the head")] = 0.0,
    label_smoothing: Annotated[float, typer.Option(help="cross-entropy label smoothing")] = 0.0,
    l2sp: Annotated[float, typer.Option(help="L2-SP strength towards pretrained weights")] = 0.0,
    lp_ft_epochs: Annotated[int, typer.Option(help="head-only epochs before unfreezing")] = 0,
    warm_start: Annotated[
        bool, typer.Option(help="start the head from a linear probe on the frozen top features")
    ] = False,
    freeze_bn_stats: Annotated[
        bool, typer.Option(help="also fix BatchNorm statistics in trained blocks")
    ] = False,
    bn_momentum: Annotated[
        float, typer.Option(help="BatchNorm running-stat momentum; 0 keeps the model's own")
    ] = 0.1,
    augment: Annotated[bool, typer.Option(help="random crops and flips while training")] = False,
    class_weighting: Annotated[
        Weighting, typer.Option(help="weight the loss by class: 1/√count, 1/count or not")
    ] = "none",
    balanced_sampler: Annotated[
        bool, typer.Option(help="draw training images so every class is seen equally often")
    ] = False,
    metric: Annotated[
        MetricName, typer.Option(help="the validation metric that picks the best epoch")
    ] = "accuracy",
    input_size: InputSizeOpt = None,
    seed: Annotated[int, typer.Option(help="training and split seed")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N")] = "auto",
    amp: Annotated[bool, typer.Option(help="mixed precision on a GPU")] = True,
    num_workers: Annotated[int, typer.Option(help="DataLoader worker processes")] = 0,
    threads: ThreadsOpt = None,
    val_fraction: ValFractionOpt = 0.2,
    max_train: Annotated[int | None, typer.Option(help="keep a stratified subset")] = None,
    max_val: Annotated[int | None, typer.Option(help="keep a stratified subset")] = None,
    on_corrupt: OnCorruptOpt = "skip",
    json_out: JsonOpt = False,
    cache: Annotated[
        bool, typer.Option(help="reuse cached frozen-prefix features (not with --augment)")
    ] = True,
    cache_dir: Annotated[
        str | None, typer.Option(help="feature cache folder (default ~/.cache/autotransfer/…)")
    ] = None,
) -> None:
    """Train and evaluate one fine-tuning configuration, reporting every epoch."""
    import torch

    from autotransfer.backbones import suggest_input_size
    from autotransfer.cache import make_cache
    from autotransfer.finetune import EpochMetrics, TrialConfig, train_trial

    torch.set_num_threads(threads or os.cpu_count() or 1)
    with user_errors():
        ds = load_data(
            dataset,
            val_fraction=val_fraction,
            seed=seed,
            on_corrupt=on_corrupt,
            max_train=max_train,
            max_val=max_val,
        )
        profile = ds.profile()
        size = input_size or suggest_input_size(backbone, profile.median_resolution)
        config = TrialConfig(
            backbone=backbone,
            weights=weights,
            freeze_depth=freeze_depth,
            epochs=epochs,
            base_lr=lr,
            layer_decay=layer_decay,
            head_lr_mult=head_lr_mult,
            optimizer=optimizer,
            momentum=momentum,
            nesterov=nesterov,
            weight_decay=weight_decay,
            warmup_epochs=warmup_epochs,
            batch_size=batch_size,
            dropout=dropout,
            label_smoothing=label_smoothing,
            l2sp=l2sp,
            lp_ft_epochs=lp_ft_epochs,
            warm_start=warm_start,
            freeze_bn_stats=freeze_bn_stats,
            bn_momentum=bn_momentum or None,
            augment=augment,
            class_weighting=class_weighting,
            balanced_sampler=balanced_sampler,
            metric=metric,
            input_size=size,
            seed=seed,
            device=device,
            amp=amp,
            num_workers=num_workers,
        )

    console.print(
        f"{profile.name}: {profile.num_train} train / {profile.num_val} val, "
        f"{profile.num_classes} classes; {backbone} at {size}×{size}, freeze depth {freeze_depth}",
        highlight=False,
    )
    table = Table("epoch", "phase", "train loss", "train acc", "val loss", "val acc", "time s")
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("epoch 1", total=None)

        def on_step(epoch: int, step: int, steps: int) -> None:
            progress.update(
                task, description=f"epoch {epoch}/{epochs}", completed=step, total=steps
            )

        def report(m: EpochMetrics) -> None:
            table.add_row(
                str(m.epoch),
                m.phase,
                f"{m.train_loss:.4f}",
                f"{m.train_accuracy:.4f}",
                f"{m.val_loss:.4f}",
                f"{m.val_accuracy:.4f}",
                f"{m.elapsed_s:.1f}",
            )
            progress.console.print(
                f"epoch {m.epoch}/{epochs}: val acc {m.val_accuracy:.4f}, "
                f"val loss {m.val_loss:.4f}",
                highlight=False,
            )

        with user_errors():
            result = train_trial(
                config, ds, reporter=report, on_step=on_step, cache=make_cache(cache, cache_dir)
            )
    if json_out:
        out.print_json(json.dumps({"config": config.model_dump(), "result": result.to_dict()}))
        return
    out.print(table)
    scored = (
        f"best val {result.metric} {result.best_val_score:.4f} (accuracy "
        f"{result.best_val_accuracy:.4f}, epoch {result.best_epoch})"
        if result.metric != "accuracy"
        else f"best val accuracy {result.best_val_accuracy:.4f} (epoch {result.best_epoch})"
    )
    out.print(
        f"{scored}, "
        f"final {result.final_val_accuracy:.4f}; {result.trainable_parameters:,} of "
        f"{result.total_parameters:,} parameters trainable ({freeze_depth}/{result.num_blocks} "
        f"blocks); {result.train_time_s:.1f} s on {result.device}",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command("backbones")(backbones_cmd)
    app.command("profile")(profile_cmd)
    app.command("train")(train_cmd)
