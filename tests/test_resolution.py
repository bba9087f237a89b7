"""The input size as a measured decision: candidates, the probe at each, the rule, and where
the search keeps a size it did not measure (fixed by the user, resumed, different data)."""

from __future__ import annotations

from pathlib import Path

import optuna

from autotransfer import record
from autotransfer.recommend import SizeProbe
from autotransfer.search import SearchRequest, prepare, run_search, settle_size
from autotransfer.search._resolution import candidate_sizes, choose_size, decide_size

DATA = "synthetic:classes=3,per_class=16,size=16,difficulty=0.2,shift=0.0"


def _request(tmp_path: Path, **options: object) -> SearchRequest:
    return SearchRequest(
        dataset=DATA,
        space="small_data",
        device="cpu",
        storage=f"sqlite:///{tmp_path / 'size.db'}",
        study_name="size",
        **options,  # type: ignore[arg-type]
    )


def test_candidates_run_from_the_datas_own_size_to_the_backbones() -> None:
    assert candidate_sizes("efficientnet_lite0", (28, 28)) == [32, 64, 128, 224]
    assert candidate_sizes("efficientnet_lite0", (224, 224)) == [128, 224]


def test_the_smallest_size_within_the_tolerance_of_the_best_probe_wins() -> None:
    rows = [SizeProbe(32, 0.60, 1), SizeProbe(64, 0.75, 2), SizeProbe(128, 0.76, 5)]
    assert choose_size(rows).input_size == 64
    assert choose_size(rows, tolerance=0.0).input_size == 128
    assert choose_size(rows, tolerance=0.2).input_size == 32


def test_data_read_as_different_keeps_its_own_size_without_probing(tmp_path: Path) -> None:
    p = prepare(_request(tmp_path))
    decision = decide_size(p, {"similarity": 0.3})
    assert decision.chosen == decision.own == p.input_size == 32
    assert decision.probes == [] and "different from the pretraining" in decision.why


def test_data_read_as_similar_is_probed_at_every_candidate_size(tmp_path: Path) -> None:
    p = prepare(_request(tmp_path))
    decision = decide_size(p, {"similarity": 0.9})
    sizes = [r.input_size for r in decision.probes]
    assert sizes == [32, 64, 128, 224]
    assert decision.chosen == choose_size(decision.probes).input_size
    for size in sizes:
        assert f"{size}: " in decision.why
    assert all(0.0 <= r.probe_accuracy <= 1.0 and r.seconds > 0 for r in decision.probes)


def test_a_fixed_size_is_never_decided_and_a_resumed_study_keeps_its_own(
    tmp_path: Path,
) -> None:
    fixed = prepare(_request(tmp_path, input_size=64))
    assert settle_size(fixed, None) == (fixed, None, None)
    # a study that holds 64 px: the same search without --input-size resumes it at 64
    request = _request(tmp_path, input_size=64, stop="trials", trials=1, max_epochs=1)
    run_search(request, seeds=[])
    resumed, seeding, decision = settle_size(prepare(_request(tmp_path)), None)
    assert (resumed.input_size, seeding, decision) == (64, None, None)


def test_a_search_records_the_size_decision(tmp_path: Path) -> None:
    request = _request(tmp_path, stop="trials", trials=1, max_epochs=1)
    study = run_search(request)
    info = record.read_study(study)
    assert info.size_decision is not None and info.size_decision["chosen"] == info.input_size
    assert info.size_decision["why"].startswith(f"{info.input_size}×{info.input_size}")
    assert optuna.load_study(study_name="size", storage=str(request.storage)).trials
