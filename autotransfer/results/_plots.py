"""Pictures of a study: accuracy against freeze depth, and the learning curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt
import optuna
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from optuna.trial import TrialState

from autotransfer import record
from autotransfer.results._decision import Decision, backbone_of, depth_of


def _score(t: optuna.trial.FrozenTrial) -> float | None:
    if t.state == TrialState.COMPLETE and t.values:
        return t.values[0]
    values = list(t.intermediate_values.values())
    return max(values) if values else None


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def _backbones(study: optuna.Study) -> list[str]:
    """The backbones a study's trials searched, sorted; empty when it fixes one."""
    return sorted({b for t in study.get_trials(deepcopy=False) if (b := backbone_of(t))})


def depth_figure(study: optuna.Study, decision: Decision | None = None) -> Figure:
    """Validation accuracy against freeze depth; pruned trials hollow, the chosen one starred;
    one colour per backbone when the study searches several."""
    fig = Figure(figsize=(7, 4.2), dpi=120)  # not pyplot's: no global state to close
    ax = fig.subplots()
    backbones = _backbones(study)
    groups: list[tuple[str | None, str, str]] = (
        [(b, f"C{i}", b) for i, b in enumerate(backbones)]
        if len(backbones) > 1
        else [(None, "tab:blue", "")]
    )
    for backbone, colour, name in groups:
        for state in (TrialState.COMPLETE, TrialState.PRUNED):
            points = [
                (depth_of(t), s)
                for t in study.get_trials(deepcopy=False, states=(state,))
                if depth_of(t) is not None
                and (s := _score(t)) is not None
                and (backbone is None or backbone_of(t) == backbone)
            ]
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            complete = state == TrialState.COMPLETE
            label = ("complete" if complete else "pruned (best epoch reached)") + (
                f", {name}" if name else ""
            )
            if complete:
                ax.scatter(xs, ys, s=36, marker="o", color=colour, label=label)
            else:
                ax.scatter(
                    xs, ys, s=36, marker="o", facecolors="none", edgecolors=colour, label=label
                )
    if decision is not None:
        on = f" of {decision.chosen_backbone}" if decision.chosen_backbone else ""
        ax.scatter(
            [decision.chosen_depth],
            [decision.chosen_score],
            marker="*",
            s=260,
            color="tab:red",
            zorder=5,
            label=f"chosen: k={decision.chosen_depth}{on}",
        )
    blocks = record.read_study(study).num_blocks if len(backbones) <= 1 else None
    ax.set_xlabel(f"freeze depth k (trainable top blocks{f' of {blocks}' if blocks else ''})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # there is no block 2.5
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"{study.study_name}: accuracy by freeze depth")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def plot_depth(study: optuna.Study, path: Path, decision: Decision | None = None) -> Path:
    """:func:`depth_figure` written to ``path`` (PNG)."""
    return _save(depth_figure(study, decision), path)


def curves_figure(study: optuna.Study) -> Figure:
    """Validation accuracy per epoch for every trial; pruned trials dashed, coloured by depth
    (by backbone when the study searches several)."""
    fig = Figure(figsize=(7, 4.2), dpi=120)  # not pyplot's: no global state to close
    ax = fig.subplots()
    trials = [t for t in study.get_trials(deepcopy=False) if t.intermediate_values]
    depths = [depth_of(t) or 0 for t in trials]
    top = max(depths, default=1) or 1
    cmap = plt.get_cmap("viridis")
    backbones = _backbones(study)
    by_backbone = len(backbones) > 1  # then one colour per backbone instead of per depth
    for t, d in zip(trials, depths, strict=True):
        steps = sorted(t.intermediate_values)
        colour = f"C{backbones.index(backbone_of(t) or '')}" if by_backbone else cmap(d / top)
        ax.plot(
            steps,
            [t.intermediate_values[s] for s in steps],
            color=colour,
            linestyle="--" if t.state == TrialState.PRUNED else "-",
            alpha=0.8,
            linewidth=1.2,
        )
    if by_backbone:
        for i, name in enumerate(backbones):
            ax.plot([], [], color=f"C{i}", label=name)
        ax.legend(loc="lower right", fontsize=8)
    else:
        sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, top))
        fig.colorbar(sm, ax=ax, label="freeze depth k", ticks=MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"{study.study_name}: learning curves (dashed = pruned)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_curves(study: optuna.Study, path: Path) -> Path:
    """:func:`curves_figure` written to ``path`` (PNG)."""
    return _save(curves_figure(study), path)
