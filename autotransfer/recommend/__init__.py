"""The rule-based recommender: measured profile and domain similarity to a seed config.

>>> from autotransfer.recommend import RuleInputs, match_rule
>>> outcome = match_rule(RuleInputs(num_train=1437, samples_per_class_min=142, similarity=0.39,
...                             budget="limited", num_blocks=17))
>>> outcome.rule.strategy, outcome.freeze_depth
('partial', 12)
"""

from __future__ import annotations

from autotransfer.recommend._recommendation import Recommendation
from autotransfer.recommend._recommender import RuleBasedRecommender, recommend
from autotransfer.recommend._rules import (
    BUDGETS,
    PRETRAIN_LR,
    REFERENCE_BATCH,
    TABLE,
    ComputeBudget,
    Rule,
    RuleInputs,
    RuleMatch,
    Strategy,
    Thresholds,
    check_budget,
    match_rule,
    size_class,
)
from autotransfer.recommend._signals import DomainSignals, draw_sample, measure_signals
from autotransfer.recommend._similarity import SIMILAR, similarity
from autotransfer.recommend._sizes import SizeProbe, probe_sizes

__all__ = [
    "BUDGETS",
    "PRETRAIN_LR",
    "REFERENCE_BATCH",
    "SIMILAR",
    "TABLE",
    "ComputeBudget",
    "DomainSignals",
    "Recommendation",
    "Rule",
    "RuleBasedRecommender",
    "RuleInputs",
    "RuleMatch",
    "SizeProbe",
    "Strategy",
    "Thresholds",
    "check_budget",
    "draw_sample",
    "match_rule",
    "measure_signals",
    "probe_sizes",
    "recommend",
    "similarity",
    "size_class",
]
