"""Seeds for a study's first trials: the recommender's configuration and its neighbours."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from autotransfer import record
from autotransfer.finetune import TrialConfig
from autotransfer.search._prepared import PreparedSearch, Seed
from autotransfer.space import SearchSpec, fit_to_space

if TYPE_CHECKING:
    from autotransfer.recommend import Recommendation

log = logging.getLogger(__name__)

# probe accuracies this close count as a tie, broken by the cheaper backbone (a sample of 256
# images resolves differences of a few points at best)
PROBE_TIE = 0.01


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
        if name in spec.parameters
        and name not in params
        and name != "backbone"  # the seed's own, never the trainer's default
        and field.default is not None
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
    # a space that searches the backbone: the backbones ranked before any trial (best first)
    ranking: list[dict[str, Any]] | None = None


def recommend_seeds(p: PreparedSearch) -> Seeding:
    """The seeds a search starts from when the caller gives none.

    ``request.start`` (the user's first configuration) replaces the recommender. With
    ``request.recommend`` (the default) the rule-based recommender measures the data
    against the pretrained backbone, its learning rates scaled to the batch the study trains
    with, and its configuration plus neighbours (k − 1, k + 1, LR ×3, LR ÷3) become the
    seeds, marked ``source="recommender"``; seeds that fall on the same point once fitted to
    the search space are kept once. The recommendation itself (``to_dict()``) comes along,
    for the engine to store on the study, where ``studies show``, the API and the audit
    read it.

    A space that searches the backbone asks the recommender about each one and ranks them
    by its linear probe (:func:`rank_backbones`); the seeds are the top backbone's
    recommendation, the second's, then the top one's neighbours. The other backbones are
    left to the sampler, which draws them only while the stopping rule lets the search go on.
    """
    start = p.request.start_params()
    if start is not None:  # the user's first configuration, instead of the recommender's
        params = complete_seed(p.spec, start)
        if p.spec.backbones:
            params.setdefault("backbone", p.backbones[0])
        return Seeding([Seed(params, source=record.USER)])
    if not p.request.recommend:
        return Seeding([])
    if len(p.backbones) == 1:
        rec = _recommend(p, p.backbones[0])
        named = {"backbone": rec.backbone} if p.spec.backbones else {}  # a one-choice zoo
        # under the procedure the recommendation is only where it starts: the procedure
        # asks for the neighbours it needs itself
        proposed = rec.seed_params()[:1] if p.spec.budget.policy == "procedure" else None
        seeds = _fitted(
            p, [{**complete_seed(p.spec, s), **named} for s in proposed or rec.seed_params()]
        )
        log.info("recommender: %s at k=%d, %d seeds", rec.strategy, rec.freeze_depth, len(seeds))
        return Seeding(seeds, rec.to_dict())
    recs = {b: _recommend(p, b) for b in p.backbones}
    ranking = rank_backbones(p, recs)
    first, second = (recs[r["backbone"]] for r in ranking[:2])

    def on(rec: Recommendation, params: dict[str, Any]) -> dict[str, Any]:
        return {**complete_seed(p.spec, params), "backbone": rec.backbone}

    top, runner_up = first.seed_params(), second.seed_params()
    ordered = [on(first, top[0]), on(second, runner_up[0]), *(on(first, s) for s in top[1:])]
    seeds = _fitted(p, ordered)
    log.info(
        "backbones ranked by their linear probe: %s; %d seeds on %s and %s",
        ", ".join(f"{r['backbone']} {r['probe_accuracy']:.3f}" for r in ranking),
        len(seeds),
        first.backbone,
        second.backbone,
    )
    return Seeding(seeds, first.to_dict(), ranking)


def _recommend(p: PreparedSearch, backbone: str) -> Recommendation:
    from autotransfer.recommend import recommend

    return recommend(
        p.dataset,
        backbone,
        weights=p.request.weights,
        input_size=p.sizes[backbone],
        seed=p.spec.budget.seed,
        batch_size=study_batch_size(p.spec),
    )


def _fitted(p: PreparedSearch, candidates: list[dict[str, Any]]) -> list[Seed]:
    seeds: list[Seed] = []
    fitted: list[dict[str, object]] = []
    for params in candidates:
        point = fit_to_space(p.spec, p.blocks, params)
        if point and point not in fitted:
            fitted.append(point)
            seeds.append(Seed(params, source=record.RECOMMENDER))
    return seeds


def rank_backbones(p: PreparedSearch, recs: dict[str, Recommendation]) -> list[dict[str, Any]]:
    """The searched backbones, best first, by the recommender's linear probe of each one's
    top features (ridge regression, cross-validated on its sample of the training split);
    within ``PROBE_TIE`` of each other the one with fewer multiply-adds goes first. A prior,
    not the decision: trials decide.

    Each entry: ``backbone``, ``probe_accuracy``, ``input_size``, and the
    :class:`InferenceCost` fields (``parameters``, ``macs``, ``latency_ms``, ``device``).
    """
    rows = []
    for backbone, rec in recs.items():
        cost = p.inference(p.trial_config({"backbone": backbone}))
        rows.append(
            {
                "backbone": backbone,
                "probe_accuracy": float(rec.signals["probe_accuracy"][-1]),
                **cost.to_dict(),
            }
        )
    best = max(r["probe_accuracy"] for r in rows)

    def order(r: dict[str, Any]) -> tuple[int, float]:
        if r["probe_accuracy"] >= best - PROBE_TIE:  # tied with the best: cheaper first
            return 0, float(r["macs"])
        return 1, -r["probe_accuracy"]

    return sorted(rows, key=order)
