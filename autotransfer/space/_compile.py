"""The one place that translates a SearchSpec into a search library's language: Optuna
distributions, samplers and pruners, and Ray Tune domains and schedulers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.study import StudyDirection

from autotransfer.space._params import BoolParam, CategoricalParam, DepthParam, FloatParam, IntParam
from autotransfer.space._search_spec import SearchSpec

if TYPE_CHECKING:  # Ray is imported only by the Ray backend: it is slow to import
    from ray.tune.schedulers import TrialScheduler

Blocks = int | Mapping[str, int]
"""The study's backbone's block count, or, for a space that searches ``backbone``, each
searched backbone's: depth parameters resolve for the backbone chosen before them."""


def block_count(blocks: Blocks, backbone: str | None) -> int:
    """The block count depth parameters resolve against, given the chosen ``backbone``."""
    if isinstance(blocks, int):
        return blocks
    if backbone is None or backbone not in blocks:
        raise ValueError(
            f"depth needs the chosen backbone's block count, but got backbone={backbone!r} "
            f"for block counts {dict(blocks)}; sample parameters.backbone first"
        )
    return blocks[backbone]


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


def optuna_distributions(
    spec: SearchSpec, blocks: Blocks, backbone: str | None = None
) -> dict[str, BaseDistribution]:
    """Every parameter's Optuna distribution, depth resolved for ``backbone`` (the study's
    when ``blocks`` is one count; required when the space searches the backbone)."""
    n = block_count(blocks, backbone)
    return {name: _distribution(p, n) for name, p in spec.parameters.items()}


def active(spec: SearchSpec, name: str, chosen: dict[str, Any]) -> bool:
    """Whether ``name`` is searched given the values chosen so far (its ``when`` holds)."""
    when = spec.parameters[name].when or {}
    return all(name_ in chosen and chosen[name_] == value for name_, value in when.items())


def suggest(trial: optuna.Trial, spec: SearchSpec, blocks: Blocks) -> dict[str, Any]:
    """Define-by-run sampling in file order, skipping parameters whose condition fails; a
    searched ``backbone`` comes first and the depth is then drawn over its own blocks."""
    chosen: dict[str, Any] = {}
    if spec.backbones is not None:
        backbone = spec.parameters["backbone"]
        chosen["backbone"] = _suggest_one(trial, "backbone", _distribution(backbone, 0))
    distributions = optuna_distributions(spec, blocks, chosen.get("backbone"))
    for name, dist in distributions.items():
        if name in chosen or not active(spec, name, chosen):
            continue
        chosen[name] = _suggest_one(trial, name, dist)
    return chosen


def _suggest_one(trial: optuna.Trial, name: str, dist: BaseDistribution) -> Any:
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    raise TypeError(f"No suggest call for {type(dist).__name__}.")


def fit_to_space(spec: SearchSpec, blocks: Blocks, params: dict[str, Any]) -> dict[str, Any]:
    """Clip a seed configuration into the space (nearest choice, bounds), dropping inactive keys.

    Seeds come from rules, not from the sampler; a seed outside the space would be recorded
    with values the sampler can never reproduce and confuse its model. A space that searches
    the backbone needs the seed's ``backbone`` (one of its choices).
    """
    backbone = params.get("backbone") if spec.backbones is not None else None
    if spec.backbones is not None and backbone not in spec.backbones:
        raise ValueError(
            f"a seed for space {spec.name!r} needs backbone in {list(spec.backbones)}, but "
            f"got {backbone!r}"
        )
    distributions = optuna_distributions(spec, blocks, backbone)
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
                value = round(value)
        fitted[name] = value
    return fitted


def optuna_sampler(spec: SearchSpec, *, seed: int) -> optuna.samplers.BaseSampler:
    """The spec's sampler, seeded. Conditional parameters need TPE's ``group`` mode."""
    sampler = spec.budget.sampler
    if sampler.type == "tpe":
        conditional = any(p.when for p in spec.parameters.values())
        return optuna.samplers.TPESampler(
            multivariate=sampler.multivariate,
            group=sampler.multivariate and conditional,
            n_startup_trials=sampler.n_startup_trials,
            seed=seed,
        )
    if sampler.type == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if sampler.type == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=sampler.n_startup_trials)
    return optuna.samplers.QMCSampler(qmc_type=sampler.qmc_type, seed=seed)


def optuna_pruner(spec: SearchSpec) -> optuna.pruners.BasePruner:
    """The spec's pruner; resources are epochs (``min_epochs`` … ``max_epochs``)."""
    pruner, budget = spec.budget.pruner, spec.budget
    if pruner.type == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=budget.min_epochs,
            max_resource=budget.max_epochs,
            reduction_factor=pruner.reduction_factor,
        )
    if pruner.type == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=budget.min_epochs,
            reduction_factor=pruner.reduction_factor,
            min_early_stopping_rate=pruner.min_early_stopping_rate,
        )
    if pruner.type == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=pruner.n_startup_trials,
            n_warmup_steps=max(pruner.n_warmup_steps, budget.min_epochs - 1),
        )
    if pruner.type == "decision":
        raise ValueError(
            "the decision pruner judges trials by the search's decision: the search engine "
            "builds it (autotransfer.search), not this compiler."
        )
    return optuna.pruners.NopPruner()


def optuna_directions(spec: SearchSpec) -> list[StudyDirection]:
    """The metric up; with ``METRIC_and_cost`` also training seconds down."""
    if spec.budget.multi_objective:
        return [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE]
    return [StudyDirection.MAXIMIZE]


# --- Ray Tune -------------------------------------------------------------------------------


def ray_search_space(spec: SearchSpec, num_blocks: Blocks) -> dict[str, Any]:
    """Every parameter as a Ray Tune domain, equal to :func:`optuna_distributions` once Ray's
    ``OptunaSearch`` converts it back (integer domains take an exclusive upper bound, except
    the quantized ``qrandint``).

    Ray Tune domains cannot express conditions: a spec with ``when:`` is refused by name (the
    Ray backend samples such specs define-by-run with :func:`suggest` instead).
    """
    from ray import tune

    if not isinstance(num_blocks, int):
        per_backbone = {
            name: {tuple(p.depths(n)) for n in num_blocks.values()}
            for name, p in spec.parameters.items()
            if isinstance(p, DepthParam)
        }
        varying = sorted(name for name, depths in per_backbone.items() if len(depths) > 1)
        if varying:
            raise ValueError(
                f"Ray Tune domains cannot express a depth that depends on the backbone, but "
                f"{varying} of space {spec.name!r} resolve to other blocks for each of "
                f"{sorted(num_blocks)}. Sample them define-by-run (the Ray backend does, "
                f"through autotransfer.space.suggest), or give the depth as blocks: [...]."
            )
        num_blocks = next(iter(num_blocks.values()))
    conditional = [name for name, p in spec.parameters.items() if p.when]
    if conditional:
        raise ValueError(
            f"Ray Tune domains cannot express conditions, but parameters {conditional} of space "
            f"{spec.name!r} have when:. Sample them define-by-run (autotransfer.space.suggest "
            f"through OptunaSearch), or drop the when: conditions."
        )
    space: dict[str, Any] = {}
    for name, param in spec.parameters.items():
        if isinstance(param, FloatParam):
            if param.log:
                space[name] = tune.loguniform(param.low, param.high)
            elif param.step is not None:
                space[name] = tune.quniform(param.low, param.high, param.step)
            else:
                space[name] = tune.uniform(param.low, param.high)
        elif isinstance(param, IntParam):
            if param.log:
                space[name] = tune.lograndint(param.low, param.high + 1)
            elif param.step > 1:
                space[name] = tune.qrandint(param.low, param.high, param.step)  # inclusive
            else:
                space[name] = tune.randint(param.low, param.high + 1)
        elif isinstance(param, CategoricalParam):
            space[name] = tune.choice(list(param.choices))
        elif isinstance(param, BoolParam):
            space[name] = tune.choice([False, True])
        elif isinstance(param, DepthParam):
            depths = param.depths(num_blocks)
            if param.fraction is not None:
                space[name] = tune.randint(depths[0], depths[-1] + 1)
            else:
                space[name] = tune.choice(depths)
        else:
            raise TypeError(f"No Ray Tune translation for {name}: {type(param).__name__}.")
    return space


def ray_scheduler(
    spec: SearchSpec, *, metric: str = "val_score", time_attr: str = "epoch"
) -> TrialScheduler:
    """The spec's pruner as a Ray Tune trial scheduler; resources are epochs.

    ``successive_halving`` → ASHA with one bracket (first rung at ``min_epochs ·
    reduction_factor ** min_early_stopping_rate``); ``hyperband`` → ASHA with as many brackets
    as Optuna's HyperbandPruner builds; ``median`` → the median stopping rule; ``none`` →
    first in, first out. Multi-objective studies cannot be stopped early (as in Optuna).
    """
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule

    pruner, budget = spec.budget.pruner, spec.budget
    if pruner.type == "decision":
        raise ValueError(
            "the decision pruner judges trials by the search's decision: on Ray the search "
            "engine applies it through its own Tune scheduler (autotransfer.search)."
        )
    if pruner.type == "none" or budget.multi_objective:
        return FIFOScheduler()
    if pruner.type == "median":
        return MedianStoppingRule(
            time_attr=time_attr,
            metric=metric,
            mode="max",
            grace_period=max(pruner.n_warmup_steps, budget.min_epochs - 1, 1),
            min_samples_required=max(pruner.n_startup_trials, 1),
        )
    grace = budget.min_epochs
    brackets = 1
    if pruner.type == "successive_halving":
        grace = budget.min_epochs * pruner.reduction_factor**pruner.min_early_stopping_rate
    else:  # hyperband: Optuna's bracket count, floor(log_eta(max / min)) + 1
        ratio = budget.max_epochs / budget.min_epochs
        while pruner.reduction_factor**brackets <= ratio:
            brackets += 1
    return ASHAScheduler(
        time_attr=time_attr,
        metric=metric,
        mode="max",
        max_t=budget.max_epochs,
        grace_period=min(grace, budget.max_epochs),
        reduction_factor=pruner.reduction_factor,
        brackets=brackets,
    )
