"""The ``autotransfer`` command."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from autotransfer.errors import UserInputError

app = typer.Typer(
    help="Search how deep to fine-tune a pretrained vision backbone on your image dataset.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
out = Console()


class OnCorrupt(StrEnum):
    skip = "skip"
    error = "error"


class Optimizer(StrEnum):
    sgd = "sgd"
    adamw = "adamw"


def _clean(message: str) -> str:
    # an error raised in a DataLoader worker arrives wrapped in the worker's traceback;
    # the user needs only its last line
    if "Traceback (most recent call last)" in message:
        last = message.strip().splitlines()[-1]
        return last.split("Error: ", 1)[-1]
    return message


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn invalid input into one clear line and exit code 2, never a traceback."""
    try:
        yield
    except ValidationError as exc:
        _fail(_validation_message(exc))
    except UserInputError as exc:
        _fail(_clean(str(exc)))


def _fail(message: str) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=2)


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "config"
        flag = f"--{field.replace('_', '-')}" if err["loc"] else field
        parts.append(f"{flag}={err.get('input')!r}: {err['msg']}")
    return "; ".join(parts)


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every epoch.")] = False,
) -> None:
    import warnings

    # heartbeats, TPE's group mode and QMC are "experimental" in Optuna; the command relies
    # on them on purpose, so their warnings are noise to its users
    warnings.filterwarnings("ignore", message=".*experimental.*")
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
    )


@app.command("backbones")
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


DatasetOpt = Annotated[
    str,
    typer.Option(
        "--dataset",
        "-d",
        help="digits | fashion-mnist[:DIR] | synthetic[:k=v,...] | an image folder | a .npz file",
    ),
]


def _load(
    dataset: str,
    val_fraction: float,
    seed: int,
    max_train: int | None,
    max_val: int | None,
    on_corrupt: OnCorrupt,
):
    from autotransfer.data import load_dataset

    return load_dataset(
        dataset,
        val_fraction=val_fraction,
        seed=seed,
        max_train=max_train,
        max_val=max_val,
        on_corrupt=on_corrupt.value,
    )


@app.command("profile")
def profile_cmd(
    dataset: DatasetOpt = "digits",
    val_fraction: float = 0.2,
    seed: int = 0,
    on_corrupt: OnCorrupt = OnCorrupt.skip,
) -> None:
    """Print a dataset's profile (sizes, classes, resolution, channels) as JSON."""
    with user_errors():
        ds = _load(dataset, val_fraction, seed, None, None, on_corrupt)
    out.print_json(json.dumps(ds.profile().to_dict()))


@app.command("train")
def train_cmd(
    dataset: DatasetOpt = "digits",
    backbone: Annotated[str, typer.Option("--backbone", "-b")] = "efficientnet_lite0",
    weights: Annotated[
        str, typer.Option(help="DEFAULT, a torchvision weight name, none, or a .pth file")
    ] = "DEFAULT",
    freeze_depth: Annotated[
        int, typer.Option("--freeze-depth", "-k", help="top k blocks trainable; 0 = head only")
    ] = 0,
    epochs: int = 6,
    lr: Annotated[float, typer.Option("--lr", help="base learning rate (top block)")] = 0.01,
    layer_decay: Annotated[float, typer.Option(help="LR factor per block downwards")] = 1.0,
    head_lr_mult: float = 1.0,
    optimizer: Optimizer = Optimizer.sgd,
    momentum: float = 0.9,
    nesterov: bool = True,
    weight_decay: float = 1e-4,
    warmup_epochs: float = 0.0,
    batch_size: int = 64,
    dropout: float = 0.0,
    label_smoothing: float = 0.0,
    l2sp: Annotated[float, typer.Option(help="L2-SP strength towards pretrained weights")] = 0.0,
    lp_ft_epochs: Annotated[int, typer.Option(help="head-only epochs before unfreezing")] = 0,
    freeze_bn_stats: bool = False,
    bn_momentum: Annotated[
        float, typer.Option(help="BatchNorm running-stat momentum; 0 keeps the model's own")
    ] = 0.1,
    augment: bool = False,
    input_size: Annotated[
        int | None, typer.Option(help="square input side; default from the data's resolution")
    ] = None,
    seed: int = 0,
    device: str = "auto",
    amp: bool = True,
    num_workers: int = 0,
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: all cores)")] = None,
    val_fraction: float = 0.2,
    max_train: int | None = None,
    max_val: int | None = None,
    on_corrupt: OnCorrupt = OnCorrupt.skip,
    json_out: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
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
        ds = _load(dataset, val_fraction, seed, max_train, max_val, on_corrupt)
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
            optimizer=optimizer.value,
            momentum=momentum,
            nesterov=nesterov,
            weight_decay=weight_decay,
            warmup_epochs=warmup_epochs,
            batch_size=batch_size,
            dropout=dropout,
            label_smoothing=label_smoothing,
            l2sp=l2sp,
            lp_ft_epochs=lp_ft_epochs,
            freeze_bn_stats=freeze_bn_stats,
            bn_momentum=bn_momentum or None,
            augment=augment,
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
                f"epoch {m.epoch}: val acc {m.val_accuracy:.4f}, val loss {m.val_loss:.4f}",
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
    out.print(
        f"best val accuracy {result.best_val_accuracy:.4f} (epoch {result.best_epoch}), "
        f"final {result.final_val_accuracy:.4f}; {result.trainable_parameters:,} of "
        f"{result.total_parameters:,} parameters trainable ({freeze_depth}/{result.num_blocks} "
        f"blocks); {result.train_time_s:.1f} s on {result.device}",
        highlight=False,
    )


# the study commands register themselves on ``app``
from autotransfer import cli_recommend as _cli_recommend  # noqa: E402, F401
from autotransfer import cli_search as _cli_search  # noqa: E402, F401


def _register_plugins() -> None:
    # commands of other distributions (the HTTP service) register themselves here; the
    # library never imports them by name
    from importlib.metadata import entry_points

    for entry in entry_points(group="autotransfer.commands"):
        entry.load()(app)


_register_plugins()
