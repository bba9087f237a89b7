"""Read-side queries over the Optuna storage: summaries, the stored decision, plots."""

from __future__ import annotations

from autotransfer.results._audit import audit_recommendation, record_audit
from autotransfer.results._decision import (
    BackboneRow,
    Decision,
    DepthRow,
    backbone_of,
    by_backbone,
    by_depth,
    decision_of,
    depth_of,
    metric_name,
    read_decision,
)
from autotransfer.results._plots import curves_figure, depth_figure, plot_curves, plot_depth
from autotransfer.results._summary import StudySummary, list_studies, load, summarize

__all__ = [
    "BackboneRow",
    "Decision",
    "DepthRow",
    "StudySummary",
    "audit_recommendation",
    "backbone_of",
    "by_backbone",
    "by_depth",
    "curves_figure",
    "decision_of",
    "depth_figure",
    "depth_of",
    "list_studies",
    "load",
    "metric_name",
    "plot_curves",
    "plot_depth",
    "read_decision",
    "record_audit",
    "summarize",
]
