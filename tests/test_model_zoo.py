"""Searching the backbone: the space, depth per backbone, the probe ranking and its seeds,
inference cost in the decision, and the report (pretrained EfficientNet-Lite0/1/2, CPU)."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import TrialState, create_trial
from typer.testing import CliRunner

from autotransfer import record
from autotransfer.backbones import num_blocks
from autotransfer.cache import FeatureKey
from autotransfer.search import SearchRequest, decide, prepare, recommend_seeds
from autotransfer.space import (
    SpecError,
    fit_to_space,
    load_spec,
    optuna_distributions,
    optuna_sampler,
    parse_spec,
    ray_search_space,
    suggest,
)

LITES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def _space(backbone: dict[str, object], **parameters: object) -> dict[str, object]:
    return {
        "name": "zoo",
        "parameters": {"backbone": backbone, **parameters},
        "budget": {"trials": 4, "max_epochs": 1},
    }


def test_an_unknown_backbone_is_refused_naming_the_field_and_the_registry() -> None:
    bad = _space({"type": "categorical", "choices": ["efficientnet_lite0", "efficientnet_lite9"]})
    with pytest.raises(SpecError) as caught:
        parse_spec(bad, source="zoo.yaml")
    message = str(caught.value)
    assert "parameters.backbone" in message and "'efficientnet_lite9'" in message
    assert "efficientnet_lite2" in message and "resnet18" in message  # the registry's names


def test_the_backbone_parameter_is_a_categorical_listed_first_and_never_fixed() -> None:
    with pytest.raises(SpecError, match="categorical"):
        parse_spec(_space({"type": "float", "low": 0.0, "high": 1.0}), source="zoo.yaml")
    late = {
        "name": "zoo",
        "parameters": {
            "freeze_depth": {"type": "depth", "fraction": [0.0, 1.0]},
            "backbone": {"type": "categorical", "choices": list(LITES)},
        },
    }
    with pytest.raises(SpecError, match="listed first"):
        parse_spec(late, source="zoo.yaml")
    with pytest.raises(SpecError, match="cannot be fixed"):
        parse_spec(
            {"name": "zoo", "parameters": {}, "fixed": {"backbone": "resnet18"}}, source="zoo.yaml"
        )


def test_depth_fractions_resolve_per_backbone() -> None:
    spec = load_spec("model_zoo")
    assert spec.backbones == LITES
    blocks = {name: num_blocks(name) for name in LITES}
    assert blocks == {LITES[0]: 17, LITES[1]: 22, LITES[2]: 22}
    for name in LITES:
        depth = optuna_distributions(spec, blocks, name)["freeze_depth"]
        assert depth == IntDistribution(0, blocks[name])
    with pytest.raises(ValueError, match=r"sample parameters\.backbone first"):
        optuna_distributions(spec, blocks)
    # a seed on Lite0 is clipped to Lite0's blocks, the same seed on Lite1 is not
    seed = {"freeze_depth": 20, "base_lr": 0.05}
    assert fit_to_space(spec, blocks, {**seed, "backbone": LITES[0]})["freeze_depth"] == 17
    assert fit_to_space(spec, blocks, {**seed, "backbone": LITES[1]})["freeze_depth"] == 20
    with pytest.raises(ValueError, match="needs backbone in"):
        fit_to_space(spec, blocks, seed)


def test_the_spec_sampler_draws_each_backbone_with_its_own_depths() -> None:
    """Define-by-run with the space's own sampler (multivariate TPE, grouped): both
    backends sample this way (Ray through the engine's searcher)."""
    spec = load_spec("model_zoo")
    blocks = {name: num_blocks(name) for name in LITES}
    study = optuna.create_study(direction="maximize", sampler=optuna_sampler(spec, seed=0))
    drawn: list[tuple[str, int]] = []
    for i in range(24):  # past the sampler's 8 start-up trials, into TPE proper
        trial = study.ask()
        params = suggest(trial, spec, blocks)
        drawn.append((params["backbone"], params["freeze_depth"]))
        study.tell(trial, 0.5 + 0.01 * (params["backbone"] == LITES[1]) + 0.001 * i)
    assert {b for b, _ in drawn} == set(LITES)
    assert all(0 <= k <= blocks[b] for b, k in drawn)
    assert any(k > 17 for b, k in drawn if b != LITES[0]), "Lite1/2 reach past Lite0's blocks"


def test_ray_domains_refuse_a_depth_that_differs_by_backbone_and_compile_a_shared_one() -> None:
    spec = load_spec("model_zoo")
    blocks = {name: num_blocks(name) for name in LITES}
    with pytest.raises(ValueError, match="depends on the backbone"):
        ray_search_space(spec, blocks)
    shared = parse_spec(
        _space(
            {"type": "categorical", "choices": list(LITES)},
            freeze_depth={"type": "depth", "blocks": [0, 2, 4]},
        ),
        source="zoo.yaml",
    )
    from ray.tune.search.optuna import OptunaSearch

    converted = OptunaSearch.convert_search_space(ray_search_space(shared, blocks))
    assert converted["backbone"] == CategoricalDistribution(list(LITES))
    assert converted["freeze_depth"] == CategoricalDistribution([0, 2, 4])


def test_the_cache_key_never_mixes_backbones() -> None:
    common = ("d" * 64, 4, "data", 32, (0.5,) * 3, (0.5,) * 3, "cpu-float32")
    keys = {FeatureKey(name, *common).digest() for name in LITES}
    assert len(keys) == 3


@pytest.fixture(scope="module")
def prepared_zoo():  # type: ignore[no-untyped-def]
    request = SearchRequest(
        dataset="digits", space="model_zoo", max_train=400, max_val=200, device="cpu"
    )
    return prepare(request)


def test_backbones_are_ranked_by_their_probe_and_the_top_two_seed_the_study(
    prepared_zoo,  # type: ignore[no-untyped-def]
) -> None:
    p = prepared_zoo
    assert p.sizes == {name: 32 for name in LITES}, "8-px digits: 32 px, below each native size"
    seeding = recommend_seeds(p)
    ranking = seeding.ranking
    assert ranking is not None and sorted(r["backbone"] for r in ranking) == sorted(LITES)
    for row in ranking:
        assert 0 < row["probe_accuracy"] <= 1 and row["macs"] > 0 and row["latency_ms"] > 0
    # best first, except that a probe within PROBE_TIE of the best goes by multiply-adds
    from autotransfer.search._seeding import PROBE_TIE

    best = max(r["probe_accuracy"] for r in ranking)
    tied = [r for r in ranking if r["probe_accuracy"] >= best - PROBE_TIE]
    assert ranking[: len(tied)] == sorted(tied, key=lambda r: r["macs"])
    rest = [r["probe_accuracy"] for r in ranking[len(tied) :]]
    assert rest == sorted(rest, reverse=True)
    backbones = [s.params["backbone"] for s in seeding.seeds]
    assert backbones[:2] == [ranking[0]["backbone"], ranking[1]["backbone"]]
    assert set(backbones[2:]) <= {ranking[0]["backbone"]}, "the neighbours are the top one's"
    for seed in seeding.seeds:  # each at a depth of its own backbone's blocks
        assert seed.params["freeze_depth"] <= p.backbone_blocks[seed.params["backbone"]]
    fitted = [fit_to_space(p.spec, p.blocks, s.params) for s in seeding.seeds]
    assert [p.trial_config(params).backbone for params in fitted] == backbones


def _trial(number: int, value: float, backbone: str, macs: int, trainable: int) -> object:
    return create_trial(
        value=value,
        params={"backbone": backbone, "freeze_depth": 3},
        distributions={
            "backbone": CategoricalDistribution(list(LITES)),
            "freeze_depth": IntDistribution(0, 22),
        },
        user_attrs=record.trial_attrs(
            backbone=backbone,
            freeze_depth=3,
            trainable_parameters=trainable,
            train_time_s=10.0,
            inference={"parameters": 1, "macs": macs, "latency_ms": 1.0, "input_size": 32},
        ),
        state=TrialState.COMPLETE,
    )


def test_the_decision_prefers_the_backbone_that_costs_less_to_run_when_as_accurate() -> None:
    study = optuna.create_study(direction="maximize")
    # Lite2 is best, Lite0 within half a point and cheaper to run, though it trains more
    study.add_trial(_trial(0, 0.990, LITES[2], macs=30_000_000, trainable=1_000))  # type: ignore[arg-type]
    study.add_trial(_trial(1, 0.987, LITES[0], macs=8_000_000, trainable=5_000))  # type: ignore[arg-type]
    study.add_trial(_trial(2, 0.970, LITES[1], macs=10_000_000, trainable=100))  # type: ignore[arg-type]
    decision = decide(study, tolerance=0.005)
    assert decision is not None
    assert (decision.best_trial, decision.chosen_trial) == (0, 1)
    assert decision.chosen_backbone == LITES[0]
    rows = {r.backbone: r for r in decision.by_backbone}
    assert rows[LITES[2]].best_score == 0.990 and rows[LITES[0]].macs == 8_000_000
    assert [(r.backbone, r.depth) for r in decision.by_depth] == [(b, 3) for b in sorted(LITES)]


def test_studies_show_has_the_backbone_tables(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from autotransfer.cli import app

    url = f"sqlite:///{tmp_path}/zoo.db"
    study = optuna.create_study(study_name="zoo", storage=url, direction="maximize")
    study.add_trial(_trial(0, 0.990, LITES[2], macs=30_000_000, trainable=1_000))  # type: ignore[arg-type]
    study.add_trial(_trial(1, 0.987, LITES[0], macs=8_000_000, trainable=5_000))  # type: ignore[arg-type]
    result = CliRunner().invoke(
        app, ["studies", "show", "zoo", "--storage", url], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "accuracy by backbone and freeze depth" in result.output
    assert "backbones: accuracy and inference cost" in result.output
    assert "of efficientnet_lite0" in result.output and "8 M" in result.output


def test_across_backbones_the_pareto_cost_is_running_time() -> None:
    from autotransfer.search._store import cost_metric

    assert cost_metric(load_spec("model_zoo")) == "latency_ms"
    assert cost_metric(load_spec("default")) == "train_time_s"
