"""``autotransfer search``: its options are ``SearchRequest``'s fields, plus how to report."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer

from autotransfer.cli._app import console, out, user_errors
from autotransfer.cli._options import JsonOpt, ToleranceOpt, model_options, option, with_options
from autotransfer.cli._progress import show_progress
from autotransfer.cli._report import print_json, print_report, study_json, write_plots
from autotransfer.search import SearchRequest

# the flags that are not the field's name with dashes: short forms, and names kept from before
# the options were derived from the model
FLAGS = {
    "dataset": ["--dataset", "-d"],
    "backbone": ["--backbone", "-b"],
    "timeout_s": ["--timeout"],
    "budget_runs": ["--budget"],
}
ALIASES = {field: next(f for f in flags if f.startswith("--")) for field, flags in FLAGS.items()}
NOT_OPTIONS = ("spec",)  # the search space as values: the command reads it from --space

REQUEST_OPTIONS = model_options(SearchRequest, exclude=NOT_OPTIONS, flags=FLAGS)
REPORT_OPTIONS = [
    option(
        "export",
        Annotated[
            Path | None,
            typer.Option(
                help="folder for the chosen configuration: config, weights (the search's own, "
                "kept as an artifact; see --retrain), model card"
            ),
        ],
        None,
    ),
    option(
        "retrain",
        Annotated[
            bool,
            typer.Option(help="--export: train the chosen configuration again for the weights"),
        ],
        False,
    ),
    option(
        "plots",
        Annotated[Path | None, typer.Option(help="folder for the PNG plots")],
        Path("."),
    ),
    option("tolerance", ToleranceOpt, None),
    option("json_out", JsonOpt, False),
]


@with_options(REQUEST_OPTIONS, REPORT_OPTIONS)
def search_cmd(**values: Any) -> None:
    """Search freeze depth and fine-tuning hyperparameters; resumes an existing study."""
    import optuna

    from autotransfer.search import (
        estimate,
        executor,
        prepare,
        recommend_seeds,
        run_search,
        settle_size,
        study_decision,
    )
    from autotransfer.storage import open_storage

    export: Path | None = values.pop("export")
    retrain: bool = values.pop("retrain")
    plots: Path | None = values.pop("plots")
    tolerance: float | None = values.pop("tolerance")
    json_out: bool = values.pop("json_out")
    with user_errors(ALIASES):
        request = SearchRequest(**values)
        executor(request.backend)  # a backend whose extra is missing says so before any work
        prepared = prepare(request)
        # a storage that cannot be opened ends here, before the live display reads it
        storage = open_storage(request.storage)
        # the input size, measured where it is a decision (a resumed study keeps its own)
        prepared, seeding, size_decision = settle_size(prepared, None)
    name, budget = prepared.study_name, prepared.spec.budget
    if prepared.plan.metric_why:  # the first line: the search chose the metric itself
        console.print(prepared.plan.metric_why, highlight=False, soft_wrap=True)
    if budget.stop == "settled":
        runs = f", {budget.budget_runs:g} fine-tuning runs" if budget.budget_runs else ""
        plan = f"stops when its decision is settled (at most {budget.trials} trials{runs})"
    else:
        plan = f"{budget.trials} trials"
    on = ", ".join(
        f"{b} ({prepared.backbone_blocks.get(b, prepared.num_blocks)} blocks) at {size}×{size}"
        for b, size in prepared.sizes.items()
    )
    console.print(
        f"study {name} in {request.storage}: {plan}, up to {budget.max_epochs} epochs each, "
        f"{on}, {budget.sampler.type} sampler, "
        f"{budget.pruner.type} pruner",
        highlight=False,
        soft_wrap=True,
    )
    if size_decision is not None:
        console.print(f"input size {size_decision.why}", highlight=False, soft_wrap=True)
    with user_errors():
        # a new study asks the recommender now, to time its first seed; a resumed one times
        # its first trial's configuration
        first: dict[str, Any] = {}
        if name in optuna.get_all_study_names(storage):
            trials = optuna.load_study(study_name=name, storage=storage).trials
            first = dict(trials[0].params) if trials else {}
        else:
            seeding = seeding or recommend_seeds(prepared)
            first = seeding.seeds[0].params if seeding.seeds else {}
        if seeding is not None and seeding.ranking:
            ranked = ", ".join(
                f"{r['backbone']} {r['probe_accuracy']:.3f}" for r in seeding.ranking
            )
            console.print(
                f"backbones by a linear probe of their frozen features (a prior; trials decide): "
                f"{ranked}; first seeds on the top two",
                highlight=False,
                soft_wrap=True,
            )
        console.print(estimate(prepared, first).line(), highlight=False, soft_wrap=True)
    with show_progress(console, storage, name, epochs=budget.max_epochs), user_errors():
        study = run_search(request, prepared=prepared, seeding=seeding, size_decision=size_decision)
    decision = study_decision(study, tolerance=tolerance)
    written: list[Path] = []
    if plots is not None and decision is not None:
        written = write_plots(study, plots, decision)
    if not json_out:  # the report first: exporting may retrain, which takes a while
        print_report(study, decision, written)
    exported = None
    if export is not None and decision is None:
        console.print("nothing to export: no trial completed", highlight=False)
    elif export is not None:
        from autotransfer.search import export_decision

        exported = export_decision(study, prepared, export, decision=decision, retrain=retrain)
    if json_out:
        extra = {"export": dataclasses.asdict(exported)} if exported is not None else {}
        print_json(study_json(study, decision, written, **extra))
    elif exported is not None:
        source = "retrained" if exported.retrained else "the search's own weights,"
        out.print(
            f"exported {exported.config_path}, {exported.weights_path}, "
            f"{exported.card_path} ({source} {exported.metric} {exported.val_score:.4f})",
            highlight=False,
            soft_wrap=True,
        )


def register(app: typer.Typer) -> None:
    app.command("search")(search_cmd)
