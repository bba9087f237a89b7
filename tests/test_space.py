"""Search-space files: packaged ones load, invalid ones fail with file, field path and value."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, IntDistribution

from autotransfer.space import (
    SpecError,
    fit_to_space,
    load_spec,
    optuna_distributions,
    optuna_pruner,
    optuna_sampler,
    packaged_specs,
    parse_spec,
    suggest,
)

REQUIRED = {"default", "small_data", "full_finetune", "vit_layer_decay"}


def test_packaged_spaces_load_and_fit_every_backbone_size() -> None:
    assert set(packaged_specs()) >= REQUIRED
    for name in packaged_specs():
        spec = load_spec(name)
        for blocks in (9, 17, 33):
            dists = optuna_distributions(spec, blocks)
            depth = dists["freeze_depth"]
            choices = (
                list(range(depth.low, depth.high + 1))
                if isinstance(depth, IntDistribution)
                else list(depth.choices)  # type: ignore[attr-defined]
            )
            assert all(0 <= k <= blocks for k in choices), (name, blocks)


def test_depth_fraction_and_block_counts_compile_per_backbone() -> None:
    spec = parse_spec(
        {"name": "d", "parameters": {"freeze_depth": {"type": "depth", "fraction": [0.0, 0.5]}}},
        source="t",
    )
    # rounded half up, as the recommender rounds (backbones.depth_of_fraction): 8.5 → 9
    assert optuna_distributions(spec, 17)["freeze_depth"] == IntDistribution(0, 9)
    assert optuna_distributions(spec, 9)["freeze_depth"] == IntDistribution(0, 5)
    spec = parse_spec(
        {
            "name": "d",
            "parameters": {"freeze_depth": {"type": "depth", "blocks": [0, 2, 20, "all"]}},
        },
        source="t",
    )
    assert optuna_distributions(spec, 13)["freeze_depth"] == CategoricalDistribution([0, 2, 13])


def test_conditional_parameters_and_seed_fitting() -> None:
    spec = load_spec("full_finetune")
    study = optuna.create_study(sampler=optuna_sampler(spec, seed=3))
    seen_momentum = {"sgd": 0, "adamw": 0}
    for _ in range(12):
        trial = study.ask()
        params = suggest(trial, spec, 17)
        seen_momentum[params["optimizer"]] += "momentum" in params
        assert ("momentum" in params) == (params["optimizer"] == "sgd")
        study.tell(trial, 0.5)
    fitted = fit_to_space(
        spec,
        17,
        {"freeze_depth": 2, "optimizer": "adamw", "momentum": 0.9, "base_lr": 5.0, "unknown": 1},
    )
    assert fitted["freeze_depth"] == 9  # clipped into fraction [0.5, 1.0] of 17 → 9..17
    assert fitted["base_lr"] == 0.1 and "momentum" not in fitted and "unknown" not in fitted


def test_samplers_and_pruners_from_the_spec() -> None:
    base = {"name": "s", "parameters": {"base_lr": {"type": "float", "low": 0.01, "high": 0.1}}}
    for sampler, cls in [
        ("tpe", optuna.samplers.TPESampler),
        ("random", optuna.samplers.RandomSampler),
        ("gp", optuna.samplers.GPSampler),
        ("qmc", optuna.samplers.QMCSampler),
    ]:
        spec = parse_spec({**base, "budget": {"sampler": {"type": sampler}}}, source="t")
        assert isinstance(optuna_sampler(spec, seed=0), cls)
    for pruner, cls in [
        ("hyperband", optuna.pruners.HyperbandPruner),
        ("successive_halving", optuna.pruners.SuccessiveHalvingPruner),
        ("median", optuna.pruners.MedianPruner),
        ("none", optuna.pruners.NopPruner),
    ]:
        spec = parse_spec({**base, "budget": {"pruner": {"type": pruner}}}, source="t")
        assert isinstance(optuna_pruner(spec), cls)


VALID = {"name": "bad", "parameters": {"base_lr": {"type": "float", "low": 0.001, "high": 0.1}}}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"parameters": {"learning_rate": {"type": "float", "low": 0.1, "high": 1}}},
            "unknown parameters ['learning_rate']",
        ),
        (
            {"parameters": {"base_lr": {"type": "float", "low": 0.1, "high": 0.01}}},
            "parameters.base_lr: Value error, low must be <= high, but got low=0.1, high=0.01",
        ),
        (
            {"parameters": {"base_lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}},
            "a log-scale range needs low > 0, but got low=0.0",
        ),
        (
            {"parameters": {"base_lr": {"type": "loguniform", "low": 0.0, "high": 0.1}}},
            "parameters.base_lr: Input tag 'loguniform' found using 'type' does not match",
        ),
        (
            {"parameters": {"freeze_depth": {"type": "depth", "fraction": [0, 1], "blocks": [1]}}},
            "give exactly one of fraction",
        ),
        (
            {"parameters": {"freeze_depth": {"type": "depth", "fraction": [0.5, 1.5]}}},
            "0 <= low <= high <= 1, but got 0.5, 1.5",
        ),
        (
            {"parameters": {"freeze_depth": {"type": "int", "low": 0, "high": 3}}},
            "freeze_depth must use type: depth",
        ),
        (
            {"budget": {"trials": 0}},
            "budget.trials: Input should be greater than or equal to 1 (got 0)",
        ),
        ({"budget": {"pruner": {"type": "asha"}}}, "budget.pruner: Input tag 'asha'"),
        ({"budget": {"min_epochs": 5, "max_epochs": 2}}, "min_epochs must be <= max_epochs"),
        ({"budget": {"objective": "accuracy_and_cost"}}, "cannot prune multi-objective"),
        (
            {
                "parameters": {
                    "momentum": {
                        "type": "float",
                        "low": 0.8,
                        "high": 0.9,
                        "when": {"optimizer": "sgd"},
                    },
                    "optimizer": {"type": "categorical", "choices": ["sgd", "adamw"]},
                }
            },
            "momentum.when refers to 'optimizer', which must be a parameter listed before",
        ),
        ({"fixed": {"optimizer": "lbfgs"}}, "optimizer"),
        ({"paramters": {}}, "paramters: Extra inputs are not permitted"),
        (
            {"parameters": {"base_lr": {"type": "float", "low": 0.1, "high": 1, "lo": 3}}},
            "parameters.base_lr.lo: Extra inputs are not permitted (got 3)",
        ),
    ],
)
def test_invalid_files_name_file_field_and_value(
    tmp_path: Path, change: dict[str, object], expected: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**VALID, **change}))
    with pytest.raises(SpecError) as info:
        load_spec(str(path))
    message = str(info.value)
    assert str(path) in message
    assert expected in message, message


def test_yaml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nparameters:\n  base_lr: {type: float, low: 0.1\n")
    with pytest.raises(SpecError, match=r"broken\.yaml: line \d+, column \d+ is not valid YAML"):
        load_spec(str(path))


def test_not_a_mapping_and_unknown_names(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(SpecError, match="must be a YAML mapping"):
        load_spec(str(path))
    with pytest.raises(SpecError, match=r"packaged name .*default"):
        load_spec("no_such_space")


def test_objectives_are_the_metrics_alone_or_with_cost() -> None:
    from typing import get_args

    from autotransfer.finetune import METRICS
    from autotransfer.space import Budget
    from autotransfer.space._budget import Objective

    assert set(get_args(Objective)) == {*METRICS, *(f"{m}_and_cost" for m in METRICS)}
    for objective in get_args(Objective):
        budget = Budget(objective=objective, pruner={"type": "none"})
        assert budget.metric in METRICS
        assert budget.multi_objective == objective.endswith("_and_cost")
