"""Search spaces and budgets as validated files, compiled to search-library distributions."""

from __future__ import annotations

from autotransfer.space._budget import Budget, Objective
from autotransfer.space._compile import (
    Blocks,
    active,
    block_count,
    fit_to_space,
    optuna_directions,
    optuna_distributions,
    optuna_pruner,
    optuna_sampler,
    ray_scheduler,
    ray_search_space,
    suggest,
)
from autotransfer.space._load import SpecError, load_spec, packaged_specs, parse_spec
from autotransfer.space._params import (
    BoolParam,
    CategoricalParam,
    DepthParam,
    FloatParam,
    IntParam,
)
from autotransfer.space._search_spec import SEARCHABLE, SearchSpec

__all__ = [
    "SEARCHABLE",
    "Blocks",
    "BoolParam",
    "Budget",
    "CategoricalParam",
    "DepthParam",
    "FloatParam",
    "IntParam",
    "Objective",
    "SearchSpec",
    "SpecError",
    "active",
    "block_count",
    "fit_to_space",
    "load_spec",
    "optuna_directions",
    "optuna_distributions",
    "optuna_pruner",
    "optuna_sampler",
    "packaged_specs",
    "parse_spec",
    "ray_scheduler",
    "ray_search_space",
    "suggest",
]
