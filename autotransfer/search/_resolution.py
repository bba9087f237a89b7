"""Input resolution as a measured decision, taken once before the study opens.

Resolution moves accuracy as much as depth does and cost by the square of the side. The ends
are the data's own size (its larger side rounded up to the backbone's step, at least the
family's minimum) and the backbone's native size; the candidates are those two and the
doublings between them, plus half the data's own size for images of 128 px and more (a 4×
cheaper run). Each candidate is measured the cheap way: one sample of training images at
that size through the frozen network, a ridge probe on its top features (feature extraction
at that size, ``recommend.probe_sizes``). The decision is the smallest candidate whose probe
is within ``SIZE_TOLERANCE`` of the best: as good at the least cost.

Where it is taken: only for data the recommender reads as similar to the backbone's
pretraining (similarity at least ``recommend.SIMILAR``), where its rules train few blocks and
the frozen features are what the trials use. For data it reads as different the search
trains deep, the network adapts to the input, and the feature probe does not predict the
fine-tuned ranking: on digits the probe gains about 11 points from 32 to 128 px while the
oracle's fine-tuned best at 32 px is already 99% (docs/benchmarks.md, input size), at 16× the
cost. There the data's own size is kept and the decision says why. ``--input-size`` fixes the
size and skips all of this.

``SIZE_TOLERANCE`` (0.02: two points on a 256-image sample, about its standard error) is a
starting value, not yet fitted on a size table: docs/benchmarks.md lists what is measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from autotransfer import record
from autotransfer.backbones import native_input_size, suggest_input_size
from autotransfer.recommend import SIMILAR, SizeProbe, probe_sizes
from autotransfer.search._prepared import PreparedSearch, prepare
from autotransfer.search._seeding import Seeding, recommend_seeds

SIZE_TOLERANCE = 0.02


@dataclass(frozen=True)
class SizeDecision:
    """The input size a search trains at, what was measured and why."""

    chosen: int
    own: int  # the data's own size, rounded to the backbone's step
    why: str
    probes: list[SizeProbe] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen,
            "own": self.own,
            "why": self.why,
            "probes": [p.to_dict() for p in self.probes],
        }


def candidate_sizes(backbone: str, resolution: tuple[int, int]) -> list[int]:
    """The sizes compared for data of ``resolution`` (h, w) on ``backbone``.

    >>> candidate_sizes("efficientnet_lite0", (8, 8))
    [32, 64, 128, 224]
    >>> candidate_sizes("efficientnet_lite0", (300, 400))
    [128, 224]
    """
    own = suggest_input_size(backbone, resolution, cap=None)
    top = max(own, native_input_size(backbone))
    sizes = {own, top}
    side = own * 2
    while side < top:
        sizes.add(side)
        side *= 2
    if own >= 128:
        sizes.add(suggest_input_size(backbone, (own // 2, own // 2), cap=None))
    return sorted(sizes)


def choose_size(probes: list[SizeProbe], *, tolerance: float = SIZE_TOLERANCE) -> SizeProbe:
    """The smallest size whose probe is within ``tolerance`` of the best one's.

    >>> rows = [SizeProbe(32, 0.70, 1.0), SizeProbe(64, 0.80, 2.0), SizeProbe(128, 0.81, 5.0)]
    >>> choose_size(rows).input_size
    64
    """
    best = max(p.probe_accuracy for p in probes)
    return min(
        (p for p in probes if p.probe_accuracy >= best - tolerance - 1e-12),
        key=lambda p: p.input_size,
    )


def decide_size(p: PreparedSearch, recommendation: dict[str, Any] | None) -> SizeDecision:
    """The size ``p``'s search should train at (``p`` was prepared at the data's own size;
    ``recommendation`` is the recommender's answer there, ``Recommendation.to_dict()``)."""
    backbone = p.request.backbone
    resolution = p.dataset.profile().median_resolution
    own = p.input_size
    sizes = candidate_sizes(backbone, resolution)
    if len(sizes) == 1:
        return SizeDecision(own, own, f"{own}×{own}: the data's own size is the backbone's")
    if recommendation is None:
        from autotransfer.recommend import recommend

        recommendation = recommend(
            p.dataset, backbone, weights=p.request.weights, input_size=own, seed=p.spec.budget.seed
        ).to_dict()
    similarity = float(recommendation["similarity"])
    if similarity < SIMILAR:
        return SizeDecision(
            own,
            own,
            f"{own}×{own}, the data's own size: the recommender reads the data as different "
            f"from the pretraining (similarity {similarity:.2f} < {SIMILAR}): fine-tuning "
            "adapts the network to the input, and a feature probe at larger sizes does not "
            "predict what fine-tuning reaches there; larger sizes cost up to "
            f"{(sizes[-1] / own) ** 2:.0f}× as much",
        )
    probes = probe_sizes(
        p.dataset, backbone, sizes, weights=p.request.weights, seed=p.spec.budget.seed
    )
    chosen = choose_size(probes)
    best = max(probes, key=lambda r: r.probe_accuracy)
    table = ", ".join(f"{r.input_size}: {r.probe_accuracy:.3f}" for r in probes)
    why = (
        f"{chosen.input_size}×{chosen.input_size}: feature extraction (a ridge probe on the "
        f"frozen top features of a sample) scores {table}; the smallest within "
        f"{SIZE_TOLERANCE * 100:.0f} points of the best ({best.input_size}: "
        f"{best.probe_accuracy:.3f}), the data read as similar to the pretraining "
        f"(similarity {similarity:.2f})"
    )
    return SizeDecision(chosen.input_size, own, why, probes)


def stored_size(p: PreparedSearch) -> int | None:
    """The input size a study of this name already holds (a resumed search keeps it)."""
    import optuna

    from autotransfer.storage import open_storage

    try:
        storage = open_storage(p.request.storage, create=False)
        if p.study_name not in optuna.get_all_study_names(storage):
            return None
        study = optuna.load_study(study_name=p.study_name, storage=storage)
    except Exception:  # no storage yet, or one this process cannot read: decide anew
        return None
    return record.read_study(study).input_size


def settle_size(
    p: PreparedSearch, seeding: Seeding | None
) -> tuple[PreparedSearch, Seeding | None, SizeDecision | None]:
    """The search prepared (and seeded) at the size :func:`decide_size` chooses, prepared
    and seeded again when that is not the data's own; a resumed study keeps its own size.
    No decision where the request fixes the size, the space searches the backbone (each
    trains at its own), or nothing seeds the search (no start to read the data from)."""
    if p.request.input_size is not None or p.spec.backbones:
        return p, seeding, None
    kept = stored_size(p)
    if kept is not None:
        if kept == p.input_size:
            return p, seeding, None
        sized = prepare(p.request.model_copy(update={"input_size": kept}))
        return sized, None, None
    seeding = seeding or recommend_seeds(p)
    if not seeding.seeds:
        return p, seeding, None
    decision = decide_size(p, seeding.recommendation)
    if decision.chosen == p.input_size:
        return p, seeding, decision
    sized = prepare(p.request.model_copy(update={"input_size": decision.chosen}))
    return sized, recommend_seeds(sized), decision
