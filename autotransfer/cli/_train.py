"""``autotransfer backbones``, ``profile`` and ``train``: the registry, a dataset, one run.

``train`` takes ``TrialConfig``'s fields as its options (see ``model_options``), plus the data
to train on and how to run and report."""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from autotransfer.cli._app import console, out, user_errors
from autotransfer.cli._options import (
    DatasetOpt,
    InputSizeOpt,
    JsonOpt,
    MaxTrainOpt,
    MaxValOpt,
    OnCorruptOpt,
    ThreadsOpt,
    ValFractionOpt,
    load_data,
    model_options,
    option,
    with_options,
)
from autotransfer.finetune import TrialConfig


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


# the flags that are not the field's name with dashes: short forms, and spellings kept from
# before the options were derived from TrialConfig
FLAGS = {
    "backbone": ["--backbone", "-b"],
    "freeze_depth": ["--freeze-depth", "-k"],
    "base_lr": ["--base-lr", "--lr"],
}
ALIASES = {field: next(f for f in flags if f.startswith("--")) for field, flags in FLAGS.items()}
# fields the command gives more meaning than the model does
HELPS = {
    "bn_momentum": "BatchNorm running-stat momentum; 0 keeps the model's own",
    "seed": "training seed (initialisation, batch order, augmentation) and split seed",
}
NOT_OPTIONS = ("input_size",)  # optional here: suggested from the data's resolution

DATA_OPTIONS = [
    option("dataset", DatasetOpt, "digits"),
    option("val_fraction", ValFractionOpt, 0.2),
    option("max_train", MaxTrainOpt, None),
    option("max_val", MaxValOpt, None),
    option("on_corrupt", OnCorruptOpt, "skip"),
]
TRIAL_OPTIONS = model_options(TrialConfig, exclude=NOT_OPTIONS, flags=FLAGS, helps=HELPS)
RUN_OPTIONS = [
    option("input_size", InputSizeOpt, None),
    option("threads", ThreadsOpt, None),
    option(
        "cache",
        Annotated[
            bool, typer.Option(help="reuse cached frozen-prefix features (not with --augment)")
        ],
        True,
    ),
    option(
        "cache_dir",
        Annotated[
            str | None,
            typer.Option(help="feature cache folder (default ~/.cache/autotransfer/…)"),
        ],
        None,
    ),
    option("json_out", JsonOpt, False),
]


@with_options(DATA_OPTIONS, TRIAL_OPTIONS, RUN_OPTIONS)
def train_cmd(**values: Any) -> None:
    """Train and evaluate one fine-tuning configuration, reporting every epoch."""
    import torch

    from autotransfer.backbones import suggest_input_size
    from autotransfer.cache import make_cache
    from autotransfer.finetune import EpochMetrics, train_trial

    data = {name: values.pop(name) for name in ("dataset", "val_fraction", "on_corrupt")}
    max_train: int | None = values.pop("max_train")
    max_val: int | None = values.pop("max_val")
    input_size: int | None = values.pop("input_size")
    threads: int | None = values.pop("threads")
    cache: bool = values.pop("cache")
    cache_dir: str | None = values.pop("cache_dir")
    json_out: bool = values.pop("json_out")
    values["bn_momentum"] = values["bn_momentum"] or None  # 0 on the command line
    if input_size is not None:
        values["input_size"] = input_size

    torch.set_num_threads(threads or os.cpu_count() or 1)
    with user_errors(ALIASES):
        config = TrialConfig(**values)  # every flag is checked before any data is read
        ds = load_data(**data, seed=config.seed, max_train=max_train, max_val=max_val)
        profile = ds.profile()
        if input_size is None:
            size = suggest_input_size(config.backbone, profile.median_resolution)
            config = TrialConfig(**values, input_size=size)

    console.print(
        f"{profile.name}: {profile.num_train} train / {profile.num_val} val, "
        f"{profile.num_classes} classes; {config.backbone} at {config.input_size}×"
        f"{config.input_size}, freeze depth {config.freeze_depth}",
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
                task, description=f"epoch {epoch}/{config.epochs}", completed=step, total=steps
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
                f"epoch {m.epoch}/{config.epochs}: val acc {m.val_accuracy:.4f}, "
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
        f"{result.total_parameters:,} parameters trainable ({config.freeze_depth}/"
        f"{result.num_blocks} blocks); {result.train_time_s:.1f} s on {result.device}",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command("backbones")(backbones_cmd)
    app.command("profile")(profile_cmd)
    app.command("train")(train_cmd)
