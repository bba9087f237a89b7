"""``autotransfer search``, ``studies`` and ``dashboard``: the study side of the command."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live
from rich.table import Table

from autotransfer.cli import DatasetOpt, OnCorrupt, _fail, app, console, out, user_errors
from autotransfer.search._storage import DEFAULT_STORAGE

studies_app = typer.Typer(help="Review studies in a storage.", no_args_is_help=True)
app.add_typer(studies_app, name="studies")

StorageOpt = Annotated[
    str, typer.Option(help="sqlite:///file.db, postgresql+psycopg://…, or journal:///file.log")
]


def _status(study_name: str, storage: str) -> Table:
    from autotransfer.results import load, summarize

    table = Table(
        "finished",
        "pruned",
        "failed",
        "running",
        "best so far",
        "current trial",
        title=f"study {study_name}",
        title_justify="left",
    )
    try:
        study = load(storage, study_name)
    except KeyError:
        return table
    s = summarize(study)
    running = [t for t in study.get_trials(deepcopy=False) if t.state.name == "RUNNING"]
    current = ", ".join(
        f"#{t.number} k={t.params.get('freeze_depth', '?')} epoch {len(t.intermediate_values)}"
        for t in running
    )
    best = f"{s.best_value:.4f} (#{s.best_trial})" if s.best_value is not None else "-"
    total = f"{s.complete + s.pruned}/{s.requested_trials or '?'}"
    table.add_row(total, str(s.pruned), str(s.failed), str(s.running), best, current or "-")
    return table


def print_report(
    study_name: str, storage: str, *, plot_dir: Path | None, tolerance: float = 0.005
) -> None:
    from autotransfer.results import decide, load, plot_curves, plot_depth, summarize

    study = load(storage, study_name)
    s = summarize(study)
    decision = decide(study, tolerance=tolerance)
    out.print(
        f"[bold]{s.name}[/]: {s.backbone} on {s.dataset} ({s.space}); "
        f"{s.complete} complete, {s.pruned} pruned, {s.failed} failed"
    )
    if decision is None:
        out.print("no completed trial yet")
        return
    table = Table(
        "freeze depth",
        "trials",
        "complete",
        "pruned",
        "failed",
        "best accuracy",
        title="accuracy by freeze depth",
        title_justify="left",
    )
    for row in decision.by_depth:
        mark = " ← chosen" if row.depth == decision.chosen_depth else ""
        acc = f"{row.best_accuracy:.4f}" if row.best_accuracy is not None else "-"
        table.add_row(
            str(row.depth),
            str(row.trials),
            str(row.complete),
            str(row.pruned),
            str(row.failed),
            acc + mark,
        )
    out.print(table)
    blocks = study.user_attrs.get("num_blocks", "?")
    out.print(
        f"best trial #{decision.best_trial}: accuracy {decision.best_accuracy:.4f}\n"
        f"chosen freeze depth: [bold]{decision.chosen_depth}[/] of {blocks} blocks "
        f"(trial #{decision.chosen_trial}, accuracy {decision.chosen_accuracy:.4f}, "
        f"{decision.chosen_trainable_parameters or 0:,} trainable parameters; the cheapest "
        f"within {decision.tolerance * 100:.1f} points of the best)\n"
        f"chosen parameters: {json.dumps(decision.chosen_params)}"
    )
    if decision.pareto_trials:
        out.print(f"Pareto front (accuracy vs training time): trials {decision.pareto_trials}")
    from autotransfer.cli_recommend import print_study_recommendation

    print_study_recommendation(study)
    if plot_dir is not None:
        depth_png = plot_depth(study, plot_dir / f"{study_name}-depth.png", decision)
        curves_png = plot_curves(study, plot_dir / f"{study_name}-curves.png")
        out.print(f"plots: {depth_png} {curves_png}")


@app.command("search")
def search_cmd(
    dataset: DatasetOpt = "digits",
    backbone: Annotated[str, typer.Option("--backbone", "-b")] = "efficientnet_lite0",
    weights: str = "DEFAULT",
    space: Annotated[
        str, typer.Option(help="packaged search space name or a YAML path")
    ] = "default",
    trials: Annotated[int | None, typer.Option(help="finished trials to reach")] = None,
    timeout: Annotated[float | None, typer.Option(help="seconds; no new trial after it")] = None,
    max_epochs: int | None = None,
    seed: Annotated[
        int | None, typer.Option(help="sampler, training and (by default) split seed")
    ] = None,
    split_seed: Annotated[
        int | None, typer.Option(help="train/validation split seed (default: --seed)")
    ] = None,
    storage: StorageOpt = DEFAULT_STORAGE,
    study_name: str | None = None,
    workers: Annotated[int, typer.Option(help="worker processes on this machine")] = 1,
    input_size: int | None = None,
    device: str = "auto",
    threads: int | None = None,
    val_fraction: float = 0.2,
    max_train: int | None = None,
    max_val: int | None = None,
    on_corrupt: OnCorrupt = OnCorrupt.skip,
    export: Annotated[Path | None, typer.Option(help="write config, weights, model card")] = None,
    plots: Annotated[Path | None, typer.Option(help="folder for the PNG plots")] = Path("."),
    tolerance: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="accuracy a cheaper choice may give up")
    ] = 0.005,
    heartbeat_interval: int = 10,
    grace_period: int = 60,
    backend: Annotated[str, typer.Option(help="optuna (this machine) or ray (Ray Tune)")] = (
        "optuna"
    ),
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster: auto, host:port or ray://host:port")
    ] = None,
    gpus_per_trial: Annotated[float, typer.Option(help="Ray: GPUs per trial (0.5 shares)")] = 0.0,
    max_concurrent_trials: Annotated[int | None, typer.Option(help="Ray: trials at once")] = None,
    recommend: Annotated[
        bool, typer.Option(help="seed the first trials with the rule-based recommender")
    ] = True,
    cache: Annotated[
        bool, typer.Option(help="reuse frozen-prefix features across trials (not with augment)")
    ] = True,
    cache_dir: Annotated[
        str | None, typer.Option(help="feature cache folder (default: beside the SQLite file)")
    ] = None,
) -> None:
    """Search freeze depth and fine-tuning hyperparameters; resumes an existing study."""
    from autotransfer.search import SearchRequest, prepare, run_search

    with user_errors():
        request = SearchRequest(
            dataset=dataset,
            backbone=backbone,
            weights=weights,
            space=space,
            trials=trials,
            timeout_s=timeout,
            max_epochs=max_epochs,
            seed=seed,
            split_seed=split_seed,
            storage=storage,
            study_name=study_name,
            workers=workers,
            input_size=input_size,
            device=device,
            threads=threads,
            val_fraction=val_fraction,
            max_train=max_train,
            max_val=max_val,
            on_corrupt=on_corrupt.value,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            backend=backend,
            ray_address=ray_address,
            gpus_per_trial=gpus_per_trial,
            max_concurrent_trials=max_concurrent_trials,
            recommend=recommend,
            cache=cache,
            cache_dir=cache_dir,
        )
        prepared = prepare(request)
    name = prepared.study_name
    budget = prepared.spec.budget
    console.print(
        f"study {name} in {storage}: {budget.trials} trials of up to {budget.max_epochs} epochs, "
        f"{backbone} ({prepared.num_blocks} blocks) at {prepared.input_size}×"
        f"{prepared.input_size}, {budget.sampler.type} sampler, {budget.pruner.type} pruner",
        highlight=False,
    )
    done = threading.Event()
    with Live(_status(name, storage), console=console, refresh_per_second=1) as live:

        def refresh() -> None:
            while not done.wait(2.0):
                live.update(_status(name, storage))

        thread = threading.Thread(target=refresh, daemon=True)
        thread.start()
        try:
            with user_errors():
                study = run_search(request, prepared=prepared)
        finally:
            done.set()
            thread.join()
            live.update(_status(name, storage))
    print_report(name, storage, plot_dir=plots, tolerance=tolerance)
    if export is not None:
        from autotransfer.results import decide
        from autotransfer.search._export import export_decision

        exported = export_decision(
            study, prepared, export, decision=decide(study, tolerance=tolerance)
        )
        out.print(
            f"exported {exported.config_path}, {exported.weights_path}, "
            f"{exported.card_path} (retrained accuracy {exported.val_accuracy:.4f})"
        )


@studies_app.command("list")
def studies_list(storage: StorageOpt = DEFAULT_STORAGE) -> None:
    """One line per study: trials by state and the best accuracy."""
    from autotransfer.results import list_studies

    table = Table("study", "backbone", "dataset", "complete", "pruned", "failed", "best")
    for s in list_studies(storage):
        best = f"{s.best_value:.4f}" if s.best_value is not None else "-"
        table.add_row(
            s.name,
            s.backbone or "-",
            s.dataset or "-",
            str(s.complete),
            str(s.pruned),
            str(s.failed),
            best,
        )
    out.print(table)


@studies_app.command("show")
def studies_show(
    name: Annotated[str, typer.Argument(help="study name")],
    storage: StorageOpt = DEFAULT_STORAGE,
    plot: Annotated[bool, typer.Option("--plot", help="write the PNG plots")] = False,
    plot_dir: Path = Path("."),
    tolerance: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="accuracy a cheaper choice may give up")
    ] = 0.005,
) -> None:
    """The decision: chosen freeze depth, accuracy by depth, best trial (and plots)."""
    try:
        print_report(name, storage, plot_dir=plot_dir if plot else None, tolerance=tolerance)
    except KeyError as exc:
        _fail(str(exc.args[0]))


@app.command("dashboard")
def dashboard_cmd(
    storage: StorageOpt = DEFAULT_STORAGE,
    host: str = "127.0.0.1",
    port: int = 8080,
) -> None:
    """Serve optuna-dashboard on the same storage."""
    import optuna_dashboard

    from autotransfer.search import make_storage

    console.print(f"optuna-dashboard for {storage} on http://{host}:{port}/", highlight=False)
    optuna_dashboard.run_server(
        make_storage(storage, heartbeat_interval=None, grace_period=None), host=host, port=port
    )
