"""Seeds for a study's first trials: the recommender's configuration and its neighbours."""

from __future__ import annotations

import logging

from autotransfer.search._prepared import PreparedSearch, Seed
from autotransfer.spec import fit_to_space

log = logging.getLogger(__name__)

RECOMMENDATION_ATTR = "recommendation"


def default_seeds(p: PreparedSearch) -> list[Seed]:
    """The seeds a search starts from when the caller gives none.

    With ``request.recommend`` (the default) the rule-based recommender measures the data
    against the pretrained backbone and its configuration plus neighbours (k − 1, k + 1,
    LR ×3, LR ÷3) become the seeds, marked ``source="recommender"``; seeds that fall on the
    same point once fitted to the search space are kept once. The recommendation itself
    (``to_dict()``) is stored on the study as user attribute ``"recommendation"``, where
    ``studies show``, the API and the audit after the study read it.
    """
    if not p.request.recommend:
        return []
    from autotransfer.recommend import recommend

    rec = recommend(
        p.dataset,
        p.request.backbone,
        weights=p.request.weights,
        input_size=p.input_size,
        seed=p.spec.budget.seed,
    )
    seeds: list[Seed] = []
    fitted: list[dict[str, object]] = []
    for params in rec.seed_params():
        point = fit_to_space(p.spec, p.num_blocks, params)
        if point and point not in fitted:
            fitted.append(point)
            seeds.append(Seed(params, source="recommender"))
    _store(p, rec.to_dict())
    log.info("recommender: %s at k=%d, %d seeds", rec.strategy, rec.freeze_depth, len(seeds))
    return seeds


def _store(p: PreparedSearch, recommendation: dict[str, object]) -> None:
    # opening the study here (idempotent) makes the recommendation visible from the first
    # trial on, whichever backend then runs it
    from autotransfer.search._run import open_study

    study = open_study(p)
    study.set_user_attr(RECOMMENDATION_ATTR, recommendation)
