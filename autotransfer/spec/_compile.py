"""The one place that translates a SearchSpec into a search library's language (Optuna here)."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from autotransfer.spec._params import BoolParam, CategoricalParam, DepthParam, FloatParam, IntParam
from autotransfer.spec._search_spec import SearchSpec


def _distribution(param: object, num_blocks: int) -> BaseDistribution:
    if isinstance(param, FloatParam):
        return FloatDistribution(param.low, param.high, log=param.log, step=param.step)
    if isinstance(param, IntParam):
        return IntDistribution(param.low, param.high, log=param.log, step=param.step)
    if isinstance(param, CategoricalParam):
        return CategoricalDistribution(param.choices)
    if isinstance(param, BoolParam):
        return CategoricalDistribution([False, True])
    if isinstance(param, DepthParam):
        depths = param.depths(num_blocks)
        if param.fraction is not None:  # contiguous: ordinal, so TPE can model neighbours
            return IntDistribution(depths[0], depths[-1])
        return CategoricalDistribution(depths)
    raise TypeError(f"No Optuna translation for {type(param).__name__}.")


def optuna_distributions(spec: SearchSpec, num_blocks: int) -> dict[str, BaseDistribution]:
    """Every parameter's Optuna distribution for a backbone with ``num_blocks`` blocks."""
    return {name: _distribution(p, num_blocks) for name, p in spec.parameters.items()}


def active(spec: SearchSpec, name: str, chosen: dict[str, Any]) -> bool:
    """Whether ``name`` is searched given the values chosen so far (its ``when`` holds)."""
    when = spec.parameters[name].when or {}
    return all(name_ in chosen and chosen[name_] == value for name_, value in when.items())


def suggest(trial: optuna.Trial, spec: SearchSpec, num_blocks: int) -> dict[str, Any]:
    """Define-by-run sampling in file order, skipping parameters whose condition fails."""
    distributions = optuna_distributions(spec, num_blocks)
    chosen: dict[str, Any] = {}
    for name, dist in distributions.items():
        if not active(spec, name, chosen):
            continue
        chosen[name] = _suggest_one(trial, name, dist)
    return chosen


def _suggest_one(trial: optuna.Trial, name: str, dist: BaseDistribution) -> Any:
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)  # type: ignore[arg-type]
    raise TypeError(f"No suggest call for {type(dist).__name__}.")


def fit_to_space(spec: SearchSpec, num_blocks: int, params: dict[str, Any]) -> dict[str, Any]:
    """Clip a seed configuration into the space (nearest choice, bounds), dropping inactive keys.

    Seeds come from rules, not from the sampler; a seed outside the space would be recorded
    with values the sampler can never reproduce and confuse its model.
    """
    distributions = optuna_distributions(spec, num_blocks)
    fitted: dict[str, Any] = {}
    for name, dist in distributions.items():
        if name not in params or not active(spec, name, fitted):
            continue
        value = params[name]
        if isinstance(dist, CategoricalDistribution):
            if value not in dist.choices:
                numeric = [c for c in dist.choices if isinstance(c, int | float)]
                if not numeric or not isinstance(value, int | float):
                    continue
                value = min(numeric, key=lambda c: abs(float(c) - float(value)))
        elif isinstance(dist, IntDistribution | FloatDistribution):
            value = min(max(value, dist.low), dist.high)
            if isinstance(dist, IntDistribution):
                value = int(round(value))
        fitted[name] = value
    return fitted
