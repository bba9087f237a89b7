"""Skewed data end to end: the search follows what the recommender measures (a balanced
metric, said on the first line), tries the ways of handling skewed classes, names a class
the chosen model never predicts, and every score it prints carries the metric's name."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

import numpy as np
import pytest
from engine_helpers import drive
from rich.console import Console
from typer.testing import CliRunner

from autotransfer import record
from autotransfer.cli import app
from autotransfer.cli._report import class_table, never_predicted
from autotransfer.data import load_dataset
from autotransfer.finetune import TrialConfig
from autotransfer.recommend import recommend
from autotransfer.search import SearchRequest, SearchSession, prepare
from autotransfer.search._seeding import recommend_seeds

TRAIN = (120, 40, 20, 8)  # images per class: 15× between the largest and the smallest


def _npz(path: Path, train: tuple[int, ...], val: int = 12) -> Path:
    """Digits 0…k−1 with ``train`` training images per class and ``val`` validation images."""
    digits = load_dataset("digits", seed=0)
    x = np.concatenate([digits.train.images.numpy(), digits.val.images.numpy()])  # type: ignore[attr-defined]
    y = np.concatenate([digits.train.labels.numpy(), digits.val.labels.numpy()])
    xt, yt, xv, yv = [], [], [], []
    for c, n in enumerate(train):
        at = np.flatnonzero(y == c)
        xt.append(x[at[:n]])
        yt += [c] * n
        xv.append(x[at[n : n + val]])
        yv += [c] * val
    np.savez(
        path,
        x_train=np.concatenate(xt)[:, 0],
        y_train=np.array(yt),
        x_val=np.concatenate(xv)[:, 0],
        y_val=np.array(yv),
    )
    return path


def _search(tmp_path: Path, data: Path, *extra: str) -> str:
    args = ["search", "--dataset", str(data), "--space", "small_data", "--input-size", "32"]
    args += ["--stop", "trials", "--trials", "2", "--max-epochs", "1", "--device", "cpu"]
    args += ["--threads", "1", "--storage", f"sqlite:///{tmp_path}/s.db", *extra]
    args += ["--plots", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_skewed_dataset_gets_balanced_accuracy_and_says_so_first(tmp_path: Path) -> None:
    output = _search(tmp_path, _npz(tmp_path / "skewed.npz", TRAIN))
    first = output.strip().splitlines()[0]
    assert first.startswith("optimising balanced accuracy: the classes are skewed"), first
    assert "15.0×" in first and "--objective accuracy" in first
    # no score is called plain accuracy: every "accuracy" is balanced accuracy, except the
    # recommender's probe, which measures plain accuracy and says "probe"
    for line in output.splitlines():
        for match in re.finditer(r"(\S*)accuracy", line):
            assert match.group(1).endswith("balanced_") or "balanced accuracy" in line, line
    shown = CliRunner().invoke(
        app,
        [
            "studies",
            "show",
            "--storage",
            f"sqlite:///{tmp_path}/s.db",
            "skewed.npz-efficientnet_lite0-small_data",
        ],
    )
    assert shown.exit_code == 0, shown.output
    assert "optimising balanced accuracy" in shown.output


def test_objective_accuracy_keeps_accuracy(tmp_path: Path) -> None:
    output = _search(tmp_path, _npz(tmp_path / "skewed.npz", TRAIN), "--objective", "accuracy")
    assert "optimising balanced accuracy" not in output
    assert "balanced_accuracy" not in output
    assert re.search(r"trial #0: .* accuracy \d\.\d{4}", output), output


def _outcome(config: TrialConfig) -> tuple[float, float]:
    """Deeper is better up to k = 7, LR 0.01 is right, and the inverse weighting helps."""
    bonus = {"none": 0.0, "sqrt_inverse": 0.02, "inverse": 0.05}[config.class_weighting]
    score = 0.6 + 0.02 * min(config.freeze_depth, 7) + bonus
    return score - 0.02 * abs(math.log(config.base_lr / 0.01)), 10.0


@pytest.mark.parametrize(("train", "tried"), [(TRAIN, True), ((30, 30, 30, 30), False)])
def test_the_weighting_options_are_tried_on_skewed_data_only(
    tmp_path: Path, train: tuple[int, ...], tried: bool
) -> None:
    request = SearchRequest(
        dataset=str(_npz(tmp_path / "data.npz", train)),
        space="small_data",
        input_size=32,
        max_epochs=1,
        device="cpu",
        storage=f"sqlite:///{tmp_path / 'w.db'}",
        study_name="weighting",
        start="freeze_depth=3,base_lr=0.01",
        budget_runs=1000.0,
    )
    p = prepare(request)
    session = SearchSession.open(p)
    session.enqueue_seeds(recommend_seeds(p).seeds)
    ran = drive(session, _outcome)
    handled = {(session.config(t).class_weighting, session.config(t).balanced_sampler) for t in ran}
    if tried:
        assert {("sqrt_inverse", False), ("inverse", False), ("none", True)} <= handled, handled
        # the inverse weighting helped: the decision keeps it
        info = record.read_study(session.study)
        assert info.decision is not None
        chosen = session.study.trials[info.decision["chosen_trial"]]
        assert chosen.params["class_weighting"] == "inverse"
    else:
        assert handled == {("none", False)}, handled


@pytest.mark.parametrize(("train", "skewed"), [(TRAIN, True), ((30, 30, 30, 30), False)])
def test_the_recommenders_start_draws_with_the_balanced_sampler_on_skewed_data(
    tmp_path: Path, train: tuple[int, ...], skewed: bool
) -> None:
    """Skewed: the start evens what each batch shows rather than weighting the loss (on two
    long-tailed sets the sampler beat sqrt-inverse and inverse weights where the network was
    fine-tuned: docs/benchmarks.md); balanced: neither."""
    dataset = load_dataset(_npz(tmp_path / "data.npz", train), seed=0)
    rec = recommend(dataset, "efficientnet_lite0", input_size=32, sample_size=48)
    assert rec.balanced_sampler is skewed
    assert rec.class_weighting == "none"
    assert rec.config_params()["balanced_sampler"] is skewed
    advice = [r for r in rec.reasons if r.startswith("skewed classes")]
    assert bool(advice) is skewed
    if skewed:
        assert "balanced_sampler: true" in advice[0], advice


def test_a_class_the_model_never_predicts_is_named() -> None:
    report = {
        "classes": ["common", "rare_defect"],
        "precision": [0.8, 0.0],
        "recall": [1.0, 0.0],
        "support": [40, 5],
        "confusion_matrix": [[40, 0], [5, 0]],
    }
    lines = never_predicted(report)
    assert len(lines) == 1 and "'rare_defect'" in lines[0] and "5 validation images" in lines[0]
    report["confusion_matrix"] = [[39, 1], [4, 1]]
    assert never_predicted(report) == []


def test_class_names_of_twenty_characters_are_shown_whole_in_80_columns() -> None:
    names = [
        "defect_crack_lateral",
        "functional_ok_sample",
        "possible_scratch_xyz",
        "burn_mark_on_surface",
    ]
    assert all(len(n) == 20 for n in names)
    report = {
        "classes": names,
        "precision": [0.9, 0.8, 0.7, 0.6],
        "recall": [0.9, 0.8, 0.7, 0.6],
        "support": [100, 50, 20, 10],
        "confusion_matrix": [[90, 5, 3, 2], [5, 40, 3, 2], [2, 2, 14, 2], [1, 1, 2, 6]],
    }
    buffer = io.StringIO()
    Console(file=buffer, width=80, force_terminal=False).print(class_table(report, 3))
    text = buffer.getvalue()
    for name in names:
        assert name in text, text
    assert max(len(line) for line in text.splitlines()) <= 80
