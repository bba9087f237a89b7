"""The rule-based recommender: the decision table, the measured signals, seeding and the audit."""

from __future__ import annotations

import json
from itertools import product
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState
from torch import nn
from typer.testing import CliRunner

from autotransfer import record
from autotransfer.backbones import Backbone, BlockLayout
from autotransfer.cli import app
from autotransfer.data import TensorImages, TransferDataset, load_dataset
from autotransfer.errors import UnknownBackboneError, UserInputError
from autotransfer.recommend import (
    PRETRAIN_LR,
    TABLE,
    Recommendation,
    RuleInputs,
    Thresholds,
    match_rule,
    measure_signals,
    recommend,
    similarity,
    size_class,
)
from autotransfer.record import read_study, read_trial
from autotransfer.results import audit_recommendation
from autotransfer.search import SearchRequest, prepare, recommend_seeds, run_search
from autotransfer.space import fit_to_space, load_spec

TINY_DATA = "synthetic:classes=3,per_class=24,size=16,difficulty=0.2,shift=0.0"
# a point well inside each size class: (training images, images in the smallest class)
SIZES = {"tiny": (400, 5), "small": (1_000, 100), "medium": (20_000, 500), "large": (90_000, 2_000)}
EXPECTED = {  # (size, similar, budget) -> (rule, strategy, k for 17 blocks, k for 9 blocks)
    ("small", True, "limited"): ("small-similar-limited", "feature_extraction", 0, 0),
    ("small", True, "ample"): ("small-similar-ample", "lp_ft", 4, 2),
    ("small", False, "limited"): ("small-different-limited", "partial", 12, 6),
    ("small", False, "ample"): ("small-different-ample", "lp_ft", 9, 5),
    ("medium", True, "limited"): ("medium-similar-limited", "partial", 4, 2),
    ("medium", True, "ample"): ("medium-similar-ample", "partial", 9, 5),
    ("medium", False, "limited"): ("medium-different-limited", "partial", 9, 5),
    ("medium", False, "ample"): ("medium-different-ample", "partial", 13, 7),
    ("large", True, "limited"): ("large-similar-limited", "feature_extraction", 0, 0),
    ("large", True, "ample"): ("large-similar-ample", "partial", 4, 2),
    ("large", False, "limited"): ("large-different-limited", "partial", 13, 7),
    ("large", False, "ample"): ("large-different-ample", "full", 17, 9),
}
for similar, budget in product((True, False), ("limited", "ample")):
    EXPECTED[("tiny", similar, budget)] = ("tiny", "feature_extraction", 0, 0)


def _inputs(size: str, similar: bool, budget: str, blocks: int = 17) -> RuleInputs:
    total, per_class = SIZES[size]
    return RuleInputs(total, per_class, 0.8 if similar else 0.2, budget, blocks)  # type: ignore[arg-type]


@pytest.mark.parametrize(("size", "similar", "budget"), sorted(EXPECTED))
def test_every_cell_of_the_table(size: str, similar: bool, budget: str) -> None:
    rule, strategy, k17, k9 = EXPECTED[(size, similar, budget)]
    outcome = match_rule(_inputs(size, similar, budget))
    assert (outcome.rule.name, outcome.rule.strategy, outcome.freeze_depth) == (rule, strategy, k17)
    assert match_rule(_inputs(size, similar, budget, blocks=9)).freeze_depth == k9
    assert outcome.size == size and outcome.similar is similar
    if strategy == "lp_ft":
        assert 0 < outcome.lp_ft_epochs < outcome.epochs
    else:
        assert outcome.lp_ft_epochs == 0
    lo, hi = outcome.search_range["base_lr"]
    assert lo < outcome.base_lr < hi
    # the new head trains at the pretraining LR, whatever the blocks' base LR
    assert outcome.head_lr_mult >= 1 and outcome.base_lr * outcome.head_lr_mult == pytest.approx(
        PRETRAIN_LR
    )
    k_lo, k_hi = outcome.search_range["freeze_depth"]
    assert k_lo <= outcome.freeze_depth <= k_hi <= 17


def test_every_row_is_reachable_and_strategies_all_appear() -> None:
    used = {match_rule(_inputs(*cell)).rule.name for cell in EXPECTED}
    assert used == {r.name for r in TABLE}
    assert {r.strategy for r in TABLE} == {"feature_extraction", "partial", "full", "lp_ft"}


@pytest.mark.parametrize(
    ("total", "per_class", "expected"),
    [
        (4_999, 2_000, "small"),
        (5_000, 2_000, "medium"),
        (49_999, 2_000, "medium"),
        (50_000, 2_000, "large"),
        (90_000, 99, "small"),
        (90_000, 100, "medium"),
        (90_000, 999, "medium"),
        (90_000, 1_000, "large"),
        (90_000, 9, "tiny"),
        (90_000, 10, "small"),
    ],
)
def test_size_class_boundaries(total: int, per_class: int, expected: str) -> None:
    assert size_class(total, per_class) == expected


def test_similarity_boundary_and_reasons_cite_the_numbers() -> None:
    below = match_rule(RuleInputs(1_437, 139, 0.4999, "limited", 17))
    at = match_rule(RuleInputs(1_437, 139, 0.5, "limited", 17))
    assert below.rule.name == "small-different-limited" and at.rule.name == "small-similar-limited"
    text = " | ".join(below.reasons)
    for number in ("1,437", "139", "0.50", "< 5,000", "round(0.7 × 17) = 12", "LR 0.1 ", "×1 "):
        assert number in text, number
    moved = match_rule(RuleInputs(1_437, 139, 0.4, "limited", 17), Thresholds(small_total=1_000))
    assert moved.size == "medium"


def test_learning_rates_scale_linearly_with_the_batch_size() -> None:
    at_64 = match_rule(RuleInputs(1_437, 139, 0.4, "limited", 17))
    at_32 = match_rule(RuleInputs(1_437, 139, 0.4, "limited", 17, batch_size=32))
    at_256 = match_rule(RuleInputs(20_000, 500, 0.4, "limited", 17, batch_size=256))
    assert at_64.base_lr == PRETRAIN_LR and at_32.base_lr == PRETRAIN_LR / 2
    assert at_32.head_lr_mult == at_64.head_lr_mult == 1.0  # the head's LR halves with it
    assert at_32.search_range["base_lr"] == [round(0.05 / 3, 6), 0.15]
    assert "× 32/64 (batch 32" in at_32.reasons[4] and "/64" not in at_64.reasons[4]
    assert at_256.base_lr == pytest.approx(0.12) and at_256.head_lr_mult == pytest.approx(10 / 3)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        match_rule(RuleInputs(1_437, 139, 0.4, "limited", 17, batch_size=0))


def test_depth_stays_inside_the_backbone() -> None:
    assert match_rule(_inputs("small", False, "limited", blocks=1)).freeze_depth == 1
    assert match_rule(_inputs("small", False, "limited", blocks=2)).freeze_depth == 1
    assert match_rule(_inputs("large", True, "ample", blocks=2)).freeze_depth == 1
    assert match_rule(_inputs("large", False, "ample", blocks=2)).freeze_depth == 2


def test_bad_budget_is_refused_with_the_value_and_the_fix() -> None:
    with pytest.raises(UserInputError, match=r"budget='lots'.*'limited'"):
        match_rule(RuleInputs(1_000, 100, 0.5, "lots", 17))  # type: ignore[arg-type]


def _rec(k: int, blocks: int = 17, lp_ft: int = 0) -> Recommendation:
    return Recommendation(
        backbone="efficientnet_lite0", weights="DEFAULT", dataset="d", num_blocks=blocks,
        input_size=32, budget="limited", strategy="partial", freeze_depth=k, base_lr=0.03,
        head_lr_mult=10.0, optimizer="sgd", momentum=0.9, nesterov=True, weight_decay=1e-4,
        epochs=6, lp_ft_epochs=lp_ft, similarity=0.4, size_class="small", rule="r",
        signals={}, profile={},
    )  # fmt: skip


def test_seed_params_are_the_recommendation_then_its_neighbours() -> None:
    seeds = _rec(6).seed_params()
    # below two thirds of the blocks: deeper first, then faster, slower, then shallower
    assert [(s["freeze_depth"], s["base_lr"]) for s in seeds] == [
        (6, 0.03),
        (7, 0.03),
        (6, 0.09),
        (6, 0.01),
        (5, 0.03),
    ]
    assert all(s["optimizer"] == "sgd" for s in seeds)
    # the head keeps its LR (0.3 here) across the LR neighbours, never below ×1
    assert [round(s["base_lr"] * s["head_lr_mult"], 6) for s in seeds] == [0.3] * 5
    edge = _rec(1, lp_ft=2).seed_params()
    assert [s["freeze_depth"] for s in edge] == [1, 2, 1, 1, 0]
    assert edge[4]["lp_ft_epochs"] == 0 and edge[1]["lp_ft_epochs"] == 2
    assert [s["freeze_depth"] for s in _rec(17).seed_params()] == [17, 16, 17, 17]
    # above two thirds (12 of 17): the shallower neighbour, which can become the decision
    # by being as accurate and cheaper, comes first, the deeper one last
    assert [s["freeze_depth"] for s in _rec(12).seed_params()] == [12, 11, 12, 12, 13]
    assert [s["freeze_depth"] for s in _rec(11).seed_params()] == [11, 12, 11, 11, 10]


# --- measured signals on real data with the pretrained EfficientNet-Lite0 -------------------


def _dataset(name: str, images: np.ndarray, labels: np.ndarray) -> TransferDataset:
    x = torch.from_numpy(np.ascontiguousarray(images))
    if x.ndim == 4 and x.shape[-1] == 3:
        x = x.permute(0, 3, 1, 2).contiguous()
    source = TensorImages(x, labels)
    classes = tuple(str(k) for k in range(int(labels.max()) + 1))
    return TransferDataset(name, source, source, classes)


def _photos(per_photo: int = 32, patch: int = 96) -> TransferDataset:
    """Random crops of the photographs that ship with scikit-image and scikit-learn."""
    skimage_data = pytest.importorskip("skimage.data")
    from sklearn.datasets import load_sample_images

    photos = [skimage_data.astronaut(), skimage_data.chelsea(), skimage_data.coffee()]
    photos += [skimage_data.rocket(), *load_sample_images().images]
    rng = np.random.default_rng(0)
    crops, labels = [], []
    for label, photo in enumerate(photos):
        h, w = photo.shape[:2]
        for _ in range(per_photo):
            y, x = rng.integers(0, h - patch), rng.integers(0, w - patch)
            crops.append(photo[y : y + patch, x : x + patch])
            labels.append(label)
    return _dataset("photos", np.stack(crops), np.asarray(labels))


def _noise() -> TransferDataset:
    rng = np.random.default_rng(0)
    return _dataset(
        "noise", rng.integers(0, 256, (192, 32, 32, 3), dtype=np.uint8), np.arange(192) % 4
    )


def test_similarity_ranks_photographs_above_digits_above_noise() -> None:
    scores = {
        name: recommend(ds, "efficientnet_lite0", input_size=32, sample_size=192)
        for name, ds in (
            ("photos", _photos()),
            ("digits", load_dataset("digits")),
            ("noise", _noise()),
        )
    }
    s = {name: rec.similarity for name, rec in scores.items()}
    assert s["photos"] > s["digits"] > s["noise"], s
    assert s["photos"] >= 0.5 > s["digits"]  # the calibration in _similarity's docstring
    shifts = {name: rec.signals["bn_shift"] for name, rec in scores.items()}
    assert shifts["photos"] < shifts["digits"] < shifts["noise"], shifts
    digits = scores["digits"]
    assert digits.rule == "small-different-limited" and digits.freeze_depth == 12
    assert len(digits.signals["bn_shift_per_block"]) == 17
    assert any("1,437 training images" in r for r in digits.reasons)
    assert any(f"similarity {digits.similarity:.2f}" in r for r in digits.reasons)
    json.dumps(digits.to_dict())  # JSON-ready
    again = recommend(load_dataset("digits"), "efficientnet_lite0", input_size=32, sample_size=192)
    for rec in (again, digits):
        rec.signals.pop("seconds")
    assert again.to_dict() == digits.to_dict()  # deterministic


def test_families_without_batchnorm_use_separability() -> None:
    torch.manual_seed(0)
    net = nn.Sequential()
    net.add_module("stem", nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.LayerNorm(16)))
    net.add_module("body", nn.Sequential(nn.Linear(16, 16), nn.LayerNorm(16)))
    net.add_module("fc", nn.Linear(16, 2))
    layout = BlockLayout(stem=r"^stem\.", blocks=(r"^body\.",), head="fc")
    backbone = Backbone(net, name="tiny", layout=layout)
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    labels = torch.arange(64) % 2
    images[labels == 1] //= 4  # class 1 is darker: separable from the first block on
    signals = measure_signals(backbone, images, labels, input_size=8)
    assert signals.bn_shift is None and signals.bn_shift_per_block == [None, None]
    assert signals.probe_cuts == [0, 1] and min(signals.probe_accuracy) > 0.9
    assert 0.0 <= similarity(signals) <= 1.0


def test_unknown_backbone_is_refused() -> None:
    with pytest.raises(UnknownBackboneError, match="resnet1"):
        recommend(_noise(), "resnet1")


# --- seeding, audit, CLI --------------------------------------------------------------------


def test_audit_ranks_the_recommended_trial_without_training() -> None:
    study = optuna.create_study(direction="maximize")
    for params in ({"x": 0.0}, {"x": 1.0}):
        study.enqueue_trial(params, user_attrs=record.trial_attrs(source=record.RECOMMENDER))
    for value in (0.7, 0.9, 0.8, 0.9):
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        study.tell(trial, value)
    audit = audit_recommendation(study)
    assert audit is not None
    assert (audit["recommended_trial"], audit["rank"], audit["of"]) == (0, 4, 4)
    assert audit["best_trial"] == 1 and audit["gap"] == pytest.approx(0.2)
    assert (audit["best_seed_trial"], audit["best_seed_rank"], audit["best_seed_gap"]) == (1, 1, 0)
    pruned = optuna.create_study(direction="maximize")
    pruned.enqueue_trial({"x": 0.5}, user_attrs=record.trial_attrs(source=record.RECOMMENDER))
    t = pruned.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    pruned.tell(t, state=TrialState.PRUNED)
    pruned.tell(pruned.ask(), 0.5)
    audit = audit_recommendation(pruned)
    assert audit is not None and audit["rank"] is None and audit["state"] == "PRUNED"
    assert audit_recommendation(optuna.create_study()) is None


def test_no_recommend_means_no_seeds(tmp_path: Path) -> None:
    request = SearchRequest(
        dataset=TINY_DATA, input_size=32, storage=f"sqlite:///{tmp_path}/n.db", recommend=False
    )
    assert recommend_seeds(prepare(request)).seeds == []


def test_search_runs_the_recommenders_seeds_first_and_stores_the_audit(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/rec.db"
    request = SearchRequest(
        dataset=TINY_DATA,
        space="small_data",
        stop="trials",
        trials=2,
        max_epochs=1,
        input_size=32,
        storage=url,
        study_name="rec",
        device="cpu",
    )
    study = run_search(request)
    trials = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    rec = read_study(study).recommendation
    assert rec is not None
    assert rec["backbone"] == "efficientnet_lite0" and rec["signals"]["sample_size"] == 57
    # small_data trains at batch 32: the recommended rates are scaled to it
    assert rec["batch_size"] == load_spec("small_data").fixed["batch_size"] == 32
    assert any("× 32/64" in reason for reason in rec["reasons"])
    # small_data runs the procedure: the recommendation is its start and runs first, then
    # the feature-extraction baseline the procedure asks for at the same learning rate
    assert [read_trial(t).source for t in trials] == ["recommender", "procedure"]
    assert [read_trial(t).step for t in trials] == ["start", "baseline"]
    # fitted to the space (small_data trains at most 13 of 17 blocks)
    point = fit_to_space(load_spec("small_data"), 17, rec["seeds"][0])
    assert {name: trials[0].params[name] for name in point} == point
    # what the recommender leaves open takes the trainer's defaults, not random draws
    for trial in trials:
        assert trial.params["layer_decay"] == 1.0 and trial.params["dropout"] == 0.0
        assert trial.params["label_smoothing"] == 0.0 and trial.params["augment"] is False
        assert trial.params["l2sp"] == 1e-4  # the default 0 clipped into [1e-4, 0.1]
    assert trials[0].params["freeze_depth"] == min(rec["freeze_depth"], 13)
    assert trials[1].params["freeze_depth"] == 0
    assert trials[1].params["base_lr"] == trials[0].params["base_lr"]
    start = read_study(study).start
    assert start is not None and start["params"] == trials[0].params
    # under the procedure only the recommendation is enqueued: it asks for the rest itself
    assert read_study(study).seeds_enqueued == 1
    audit = read_study(study).recommendation_audit
    assert audit is not None
    assert audit["recommended_trial"] == 0 and audit["of"] == 2 and audit["rank"] in (1, 2)
    result = CliRunner().invoke(app, ["studies", "show", "rec", "--storage", url])
    assert result.exit_code == 0, result.output
    assert f"recommender: {rec['strategy']} at k = {rec['freeze_depth']}" in result.output
    assert f"audit: recommended trial #0 ranked {audit['rank']} of 2" in result.output


def test_cli_recommend_prints_reasons_and_json() -> None:
    runner = CliRunner()
    args = ["recommend", "--dataset", "digits", "--input-size", "32", "--sample-size", "128"]
    human = runner.invoke(app, args)
    assert human.exit_code == 0, human.output
    for text in ("recommendation for efficientnet_lite0 on digits", "reasons:", "1,437", "seeds"):
        assert text in human.output, text
    machine = runner.invoke(app, [*args, "--json", "--budget", "ample", "--batch-size", "128"])
    assert machine.exit_code == 0, machine.output
    data = json.loads(machine.output)
    assert data["budget"] == "ample" and data["rule"].endswith("-ample")
    assert data["batch_size"] == 128 and any("× 128/64" in r for r in data["reasons"])
    assert data["signals"]["sample_size"] == 128 and data["reasons"] and data["seeds"]
    zero = runner.invoke(app, [*args, "--batch-size", "0"])
    assert zero.exit_code == 2 and "batch_size=0" in zero.output
    bad = runner.invoke(app, ["recommend", "--budget", "lots"])
    assert bad.exit_code == 2 and "budget='lots'" in bad.output
    unknown = runner.invoke(app, ["recommend", "--backbone", "resnet1"])
    assert unknown.exit_code == 2 and "Unknown backbone 'resnet1'" in unknown.output
