"""Read-side queries over the Optuna storage: summaries, the decision, plots."""

from __future__ import annotations

from autotransfer.results._audit import audit_recommendation, record_audit
from autotransfer.results._decision import (
    DEFAULT_TOLERANCE,
    BackboneRow,
    Decision,
    DepthRow,
    backbone_of,
    by_backbone,
    by_depth,
    choose,
    cost_of,
    decide,
    depth_of,
)
from autotransfer.results._plots import curves_figure, depth_figure, plot_curves, plot_depth
from autotransfer.results._summary import StudySummary, list_studies, load, summarize

__all__ = [
    "DEFAULT_TOLERANCE",
    "BackboneRow",
    "Decision",
    "DepthRow",
    "StudySummary",
    "audit_recommendation",
    "backbone_of",
    "by_backbone",
    "by_depth",
    "choose",
    "cost_of",
    "curves_figure",
    "decide",
    "depth_figure",
    "depth_of",
    "list_studies",
    "load",
    "plot_curves",
    "plot_depth",
    "record_audit",
    "summarize",
]
