"""Seeds for a study's first trials: the recommender's configuration and its neighbours."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from autotransfer import record
from autotransfer.finetune import TrialConfig
from autotransfer.search._prepared import PreparedSearch, Seed
from autotransfer.spec import SearchSpec, fit_to_space

log = logging.getLogger(__name__)


def complete_seed(spec: SearchSpec, params: dict[str, Any]) -> dict[str, Any]:
    """The seed plus the trainer's default for every searched parameter it leaves open.

    The recommender speaks to depth, learning rates, optimizer and weight decay. Left open,
    Optuna would draw the rest (layer-wise LR decay, dropout, label smoothing…) at random
    for an enqueued trial, so a seed meant as "the recommendation" could train its lower
    blocks at 0.6¹⁰ of its LR. Defaults are what ``autotransfer train`` would use.
    """
    defaults = {
        name: field.default
        for name, field in TrialConfig.model_fields.items()
        if name in spec.parameters and name not in params and field.default is not None
    }
    return {**defaults, **params}


def study_batch_size(spec: SearchSpec) -> int:
    """The batch the seeds train with: the spec's fixed one, else the trainer's default
    (``complete_seed`` fills a searched ``batch_size`` with that default too)."""
    default = TrialConfig.model_fields["batch_size"].default
    return int(spec.fixed.get("batch_size", default))


@dataclass(frozen=True)
class Seeding:
    """The seeds a study starts from and the recommendation they came from (if any)."""

    seeds: list[Seed]
    recommendation: dict[str, Any] | None = None


def recommend_seeds(p: PreparedSearch) -> Seeding:
    """The seeds a search starts from when the caller gives none.

    With ``request.recommend`` (the default) the rule-based recommender measures the data
    against the pretrained backbone, its learning rates scaled to the batch the study trains
    with, and its configuration plus neighbours (k − 1, k + 1, LR ×3, LR ÷3) become the
    seeds, marked ``source="recommender"``; seeds that fall on the same point once fitted to
    the search space are kept once. The recommendation itself (``to_dict()``) comes along,
    for the engine to store on the study, where ``studies show``, the API and the audit
    read it.
    """
    if not p.request.recommend:
        return Seeding([])
    from autotransfer.recommend import recommend

    rec = recommend(
        p.dataset,
        p.request.backbone,
        weights=p.request.weights,
        input_size=p.input_size,
        seed=p.spec.budget.seed,
        batch_size=study_batch_size(p.spec),
    )
    seeds: list[Seed] = []
    fitted: list[dict[str, object]] = []
    for params in (complete_seed(p.spec, s) for s in rec.seed_params()):
        point = fit_to_space(p.spec, p.blocks, params)
        if point and point not in fitted:
            fitted.append(point)
            seeds.append(Seed(params, source=record.RECOMMENDER))
    log.info("recommender: %s at k=%d, %d seeds", rec.strategy, rec.freeze_depth, len(seeds))
    return Seeding(seeds, rec.to_dict())
