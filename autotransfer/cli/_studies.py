"""``autotransfer studies list|show|delete`` and ``dashboard``: review what a storage holds.

Every command here only reads (``delete`` removes a study that exists): none creates a
storage, so a mistyped path is an error, not a new empty database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import optuna
import typer
from rich.table import Column, Table

from autotransfer.cli._app import console, fail, out, user_errors
from autotransfer.cli._options import JsonOpt, StorageOpt, ToleranceOpt
from autotransfer.cli._report import print_json, print_report, study_json, write_plots
from autotransfer.storage import DEFAULT_STORAGE

NameArg = Annotated[str, typer.Argument(help="study name")]


def _load(storage: str, name: str) -> optuna.Study:
    """The study, or one error line: an unusable storage, or the names it does hold."""
    from autotransfer.results import load

    with user_errors():
        try:
            return load(storage, name)
        except KeyError as exc:
            fail(str(exc.args[0]))


def studies_list(storage: StorageOpt = DEFAULT_STORAGE, json_out: JsonOpt = False) -> None:
    """One line per study: trials by state and the best score of its metric."""
    from autotransfer.results import list_studies

    with user_errors():
        summaries = list_studies(storage)
    if json_out:
        print_json([s.to_dict() for s in summaries])
        return
    # the name is what the other commands take: wrapped, never cut short
    study = Column("study", overflow="fold")
    table = Table(study, "backbone", "dataset", "complete", "pruned", "failed", "best")
    for s in summaries:
        best = f"{s.metric} {s.best_value:.4f}" if s.best_value is not None else "-"
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


def studies_show(
    name: NameArg,
    storage: StorageOpt = DEFAULT_STORAGE,
    plot: Annotated[bool, typer.Option("--plot", help="write the PNG plots")] = False,
    plot_dir: Annotated[Path, typer.Option(help="folder for the plots")] = Path("."),
    tolerance: ToleranceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The decision: chosen freeze depth, accuracy by depth, best trial (and plots)."""
    from autotransfer.search import study_decision

    study = _load(storage, name)
    decision = study_decision(study, tolerance=tolerance)
    written = write_plots(study, plot_dir, decision) if plot else []
    if json_out:
        print_json(study_json(study, decision, written))
        return
    print_report(study, decision, written)


def studies_delete(
    name: NameArg,
    storage: StorageOpt = DEFAULT_STORAGE,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
) -> None:
    """Delete a study and all its trials from the storage (the feature cache stays)."""
    from autotransfer.storage import open_storage

    trials = len(_load(storage, name).get_trials(deepcopy=False))
    if not yes:
        typer.confirm(
            f"Delete study {name!r} ({trials} trials) from {storage}?", abort=True, err=True
        )
    optuna.delete_study(study_name=name, storage=open_storage(storage, create=False))
    console.print(f"deleted study {name!r} ({trials} trials) from {storage}", highlight=False)


def dashboard_cmd(
    storage: StorageOpt = DEFAULT_STORAGE,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8080,
) -> None:
    """Serve optuna-dashboard on the same storage."""
    from autotransfer.errors import missing_extra
    from autotransfer.storage import open_storage

    with user_errors():
        try:
            import optuna_dashboard
        except ModuleNotFoundError as exc:
            raise missing_extra(exc, "autotransfer dashboard") from None
        opened = open_storage(storage, create=False)
    console.print(f"optuna-dashboard for {storage} on http://{host}:{port}/", highlight=False)
    optuna_dashboard.run_server(opened, host=host, port=port)


def register(app: typer.Typer) -> None:
    studies = typer.Typer(
        help="Review studies in a storage.", no_args_is_help=True, rich_markup_mode=None
    )
    studies.command("list")(studies_list)
    studies.command("show")(studies_show)
    studies.command("delete")(studies_delete)
    app.add_typer(studies, name="studies")
    app.command("dashboard")(dashboard_cmd)
