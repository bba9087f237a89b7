"""What the commands print about a study and a recommendation, for people and for machines."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import typer
from rich.table import Table

from autotransfer import record
from autotransfer.cli._app import out
from autotransfer.recommend import DomainSignals, Recommendation
from autotransfer.results import Decision, plot_curves, plot_depth, summarize


def _of(cls: Any, values: dict[str, Any]) -> Any:
    # stored dicts may carry more than the class (a recommendation's "seeds"); old ones less
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def recommendation_of(values: dict[str, Any]) -> Recommendation:
    """A stored ``Recommendation.to_dict()`` as the object again."""
    return _of(Recommendation, values)


def print_recommendation(rec: Recommendation) -> None:
    """The human-readable recommendation: configuration, signals, reasons, search range."""
    lp_ft = f", first {rec.lp_ft_epochs} epochs head only" if rec.lp_ft_epochs else ""
    out.print(
        f"[bold]recommendation[/] for {rec.backbone} on {rec.dataset} "
        f"(budget {rec.budget}): [bold]{rec.strategy}[/], freeze depth k = {rec.freeze_depth} "
        f"of {rec.num_blocks} blocks, base LR {rec.base_lr:g} (head ×{rec.head_lr_mult:g}), "
        f"{rec.optimizer.upper()} momentum {rec.momentum:g}"
        f"{' Nesterov' if rec.nesterov else ''}, {rec.epochs} epochs{lp_ft}",
        highlight=False,
    )
    s: DomainSignals = _of(DomainSignals, rec.signals)
    shift = f"{s.bn_shift:.3f}" if s.bn_shift is not None else "n/a (no BatchNorm)"
    probes = ", ".join(
        f"block {c}: {a:.3f}" for c, a in zip(s.probe_cuts, s.probe_accuracy, strict=True)
    )
    out.print(
        f"signals ({s.sample_size} images, {s.seconds:.1f} s): similarity "
        f"{rec.similarity:.3f}, BatchNorm shift {shift}, probe gain {s.probe_gain:.3f}, "
        f"linear probe {probes} (chance on the class-balanced sample {s.chance:.3f})",
        highlight=False,
    )
    out.print("reasons:", highlight=False)
    for reason in rec.reasons:
        out.print(f"  - {reason}", highlight=False)
    ranges = ", ".join(f"{name} {lo:g}…{hi:g}" for name, (lo, hi) in rec.search_range.items())
    out.print(f"narrowed search range: {ranges}", highlight=False)


def print_seeds(rec: Recommendation) -> None:
    table = Table("seed", "freeze depth", "base LR", "head ×", title="seeds", title_justify="left")
    for i, seed in enumerate(rec.seed_params()):
        label = "recommended" if i == 0 else "neighbour"
        table.add_row(
            label, str(seed["freeze_depth"]), f"{seed['base_lr']:g}", f"{seed['head_lr_mult']:g}"
        )
    out.print(table)


def print_study_recommendation(info: record.StudyInfo) -> None:
    """For a study's report: the input size and why, its stored recommendation, short, and
    how its trial ranked."""
    if info.metric_why:
        out.print(info.metric_why, highlight=False)
    if info.size_decision:
        out.print(f"input size {info.size_decision['why']}", highlight=False)
    elif info.input_size:
        out.print(f"input size {info.input_size}×{info.input_size} (fixed)", highlight=False)
    if not info.recommendation:
        return
    rec = recommendation_of(info.recommendation)
    out.print(
        f"recommender: {rec.strategy} at k = {rec.freeze_depth}, base LR "
        f"{rec.base_lr:g} (rule {rec.rule!r}, similarity {rec.similarity:.3f}, "
        f"{rec.profile['num_train']:,} training images, budget {rec.budget})",
        highlight=False,
    )
    audit = info.recommendation_audit
    if not audit:
        return
    if audit["rank"] is None:
        verdict = f"did not complete ({audit['state'].lower()})"
    else:
        # audits stored before scores were named by their metric called them accuracy
        metric = audit.get("metric", "accuracy")
        score = audit.get("recommended_score", audit.get("recommended_accuracy"))
        verdict = (
            f"ranked {audit['rank']} of {audit['of']} completed trials, {metric} "
            f"{score:.4f}, {audit['gap'] * 100:.2f} points below the best"
        )
    line = f"audit: recommended trial #{audit['recommended_trial']} {verdict}"
    if audit.get("best_seed_rank") is not None:
        line += (
            f"; best recommender seed #{audit['best_seed_trial']} ranked "
            f"{audit['best_seed_rank']}, {audit['best_seed_gap'] * 100:.2f} points below"
        )
    out.print(line, highlight=False)


def backbone_table(decision: Decision, ranking: Sequence[dict[str, Any]]) -> Table:
    """Each searched backbone: its best trial, what it costs to run, and its probe rank."""
    probe = {r["backbone"]: (i + 1, r["probe_accuracy"]) for i, r in enumerate(ranking)}
    table = Table(
        "backbone",
        "input",
        "trials",
        "complete",
        f"best {decision.metric}",
        "parameters",
        "MACs",
        "latency / image",
        "probe (rank)",
        title="backbones: accuracy and inference cost",
        title_justify="left",
    )
    for row in decision.by_backbone:
        mark = " ← chosen" if row.backbone == decision.chosen_backbone else ""
        rank, accuracy = probe.get(row.backbone, (None, None))
        table.add_row(
            row.backbone,
            f"{row.input_size} px" if row.input_size else "-",
            str(row.trials),
            str(row.complete),
            (f"{row.best_score:.4f}" if row.best_score is not None else "-") + mark,
            f"{row.parameters / 1e6:.2f} M" if row.parameters else "-",
            f"{row.macs / 1e6:.0f} M" if row.macs else "-",
            f"{row.latency_ms:.1f} ms" if row.latency_ms is not None else "-",
            f"{accuracy:.3f} (#{rank})" if rank is not None else "-",
        )
    return table


def write_plots(study: optuna.Study, folder: Path, decision: Decision | None) -> list[Path]:
    """The depth plot and the learning curves as ``NAME-depth.png``, ``NAME-curves.png``."""
    name = study.study_name
    return [
        plot_depth(study, folder / f"{name}-depth.png", decision),
        plot_curves(study, folder / f"{name}-curves.png"),
    ]


def print_report(
    study: optuna.Study, decision: Decision | None, plots: Sequence[Path] = ()
) -> None:
    """The decision: accuracy by freeze depth, the chosen depth and why, the recommender."""
    s = summarize(study)
    info = record.read_study(study)
    searched = ((info.spec or {}).get("parameters") or {}).get("backbone") or {}
    backbones = " | ".join(map(str, searched.get("choices") or [])) or s.backbone
    out.print(
        f"[bold]{s.name}[/]: {backbones} on {s.dataset} ({s.space}); "
        f"{s.complete} complete, {s.pruned} pruned, {s.failed} failed"
        + (f", {s.skipped} skipped (queued, never run)" if s.skipped else "")
    )
    if decision is None:
        out.print("no completed trial yet")
        return
    metric = decision.metric
    zoo = bool(decision.by_backbone)
    columns = ["backbone"] if zoo else []
    table = Table(
        *columns,
        "freeze depth",
        "trials",
        "complete",
        "pruned",
        "failed",
        f"best {metric}",
        title=f"{metric} by {'backbone and ' if zoo else ''}freeze depth",
        title_justify="left",
    )
    for row in decision.by_depth:
        chosen = row.depth == decision.chosen_depth and row.backbone == decision.chosen_backbone
        mark = " ← chosen" if chosen else ""
        acc = f"{row.best_score:.4f}" if row.best_score is not None else "-"
        table.add_row(
            *([row.backbone or "-"] if zoo else []),
            str(row.depth),
            str(row.trials),
            str(row.complete),
            str(row.pruned),
            str(row.failed),
            acc + mark,
        )
    out.print(table)
    if zoo:
        out.print(backbone_table(decision, info.backbone_ranking or []))
    blocks: object = info.num_blocks if info.num_blocks is not None else "?"
    if zoo:
        chosen_trial = study.trials[decision.chosen_trial]
        blocks = record.read_trial(chosen_trial).num_blocks or "?"
    on = f" of {decision.chosen_backbone}" if zoo else ""
    out.print(
        f"best trial #{decision.best_trial}: {metric} {decision.best_score:.4f}\n"
        f"chosen freeze depth: [bold]{decision.chosen_depth}[/] of {blocks} blocks{on} "
        f"(trial #{decision.chosen_trial}, {metric} {decision.chosen_score:.4f}, "
        f"{decision.chosen_trainable_parameters or 0:,} trainable parameters; the cheapest "
        f"within {decision.tolerance * 100:.1f} points of the best)\n"
        f"chosen parameters: {json.dumps(decision.chosen_params)}"
    )
    if decision.pareto_trials:
        names = study.metric_names or []
        cost = "latency per image" if names[1:] == ["latency_ms"] else "training time"
        out.print(f"Pareto front ({metric} vs {cost}): trials {decision.pareto_trials}")
    if decision.chosen_class_report:
        out.print(class_table(decision.chosen_class_report, decision.chosen_trial))
        for line in never_predicted(decision.chosen_class_report):
            out.print(line, highlight=False)
    if info.stop_reason:
        out.print(f"stopped: {info.stop_reason}", highlight=False)
    if info.model:
        kept_metric = info.model.get("metric", metric)
        kept_score = info.model.get("score", info.model.get("accuracy", float("nan")))
        out.print(
            f"model: trial #{info.model['trial']}'s weights kept as artifact "
            f"{info.model['artifact_id']} ({kept_metric} {kept_score:.4f}); "
            f"--export hands them over without retraining",
            highlight=False,
        )
    if info.test:
        out.print(test_line(info.test), highlight=False)
    print_study_recommendation(info)
    if plots:
        out.print(f"plots: {' '.join(map(str, plots))}", highlight=False, soft_wrap=True)


def test_line(test: dict[str, Any]) -> str:
    """The test figure, labelled as what it is (and what the validation figure is not)."""
    if "error" in test:
        return f"test split: not scored ({test['error']})"
    other = f", accuracy {test['accuracy']:.4f}" if test["metric"] != "accuracy" else ""
    return (
        f"test: {test['metric']} {test['score']:.4f}{other} on {test['images']:,} images "
        f"the search never saw ({test['source']}), trial #{test['trial']}'s kept weights; "
        f"the validation figures above chose the model, this one did not"
    )


MATRIX_CLASSES = 6  # up to this many classes the confusion matrix fits beside the table


def never_predicted(report: dict[str, Any]) -> list[str]:
    """A warning line per class that has validation images but that the model never
    predicts (its confusion-matrix column is empty): the rows a skewed search is for."""
    columns = list(zip(*report["confusion_matrix"], strict=True))
    return [
        f"warning: the chosen model never predicts class {name!r} ({support} validation "
        "images): every one of them is taken for another class"
        for name, support, column in zip(report["classes"], report["support"], columns, strict=True)
        if support and not any(column)
    ]


def class_table(report: dict[str, Any], trial: int) -> Table:
    """Per-class precision, recall and support; the confusion matrix's rows too for a few
    classes (``--json`` and the API always carry the whole matrix). Class names are shown
    whole; the matrix's columns are numbered to leave them the room."""
    classes = report["classes"]
    matrix = len(classes) <= MATRIX_CLASSES
    title = f"per class (validation, trial #{trial})"
    table = Table(
        title=title + (" (→n: predicted as class n)" if matrix else ""),
        title_justify="left",
    )
    table.add_column("class", no_wrap=True)
    for header in ("precision", "recall", "images"):
        table.add_column(header, justify="right")
    for i in range(len(classes)) if matrix else ():
        table.add_column(f"→{i}", justify="right")
    rows = zip(classes, report["precision"], report["recall"], report["support"], strict=True)
    for i, ((name, precision, recall, support), counts) in enumerate(
        zip(rows, report["confusion_matrix"], strict=True)
    ):
        table.add_row(
            f"{i} {name}" if matrix else str(name),
            f"{precision:.3f}",
            f"{recall:.3f}",
            str(support),
            *(map(str, counts) if matrix else []),
        )
    return table


def study_json(
    study: optuna.Study, decision: Decision | None, plots: Sequence[Path] = (), **extra: Any
) -> dict[str, Any]:
    """``--json``: the study's summary and decision (``None`` before a trial completed)."""
    info = record.read_study(study)
    return {
        "summary": summarize(study).to_dict(),
        "decision": decision.to_dict() if decision is not None else None,
        "stop_reason": info.stop_reason,
        "model": info.model,
        "plots": [str(p) for p in plots],
        **extra,
    }


def print_json(payload: Any) -> None:
    """Machine-readable output: JSON alone on stdout, never wrapped or coloured."""
    typer.echo(json.dumps(payload, indent=2, default=str))
