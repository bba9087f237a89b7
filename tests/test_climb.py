"""The search policy as a procedure: decided on synthetic studies (told values), then driven
through the engine with synthetic trial ends (no training)."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import pytest
from engine_helpers import drive
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial

from autotransfer import record
from autotransfer.finetune import TrialConfig
from autotransfer.search import (
    SearchRequest,
    SearchSession,
    Ticket,
    prepare,
    run_search,
    study_decision,
)
from autotransfer.search._climb import FLAT, PENDING, Proposal, Step, ladder, next_step
from autotransfer.search._policy import over_budget
from autotransfer.search._seeding import recommend_seeds

DISTS = {"freeze_depth": IntDistribution(0, 17), "base_lr": FloatDistribution(0.003, 0.1)}
START = {"freeze_depth": 0, "base_lr": 0.01, "dropout": 0.1}
AT = dt.datetime(2026, 12, 1, 12, 0, 0)
TOL = 0.005


def _trial(
    k: int,
    lr: float,
    score: float | None,
    *,
    state: TrialState = TrialState.COMPLETE,
    seconds: float = 10.0,
    number: int = 0,
) -> FrozenTrial:
    finished = state.is_finished()
    trial = create_trial(
        state=state,
        value=score if state == TrialState.COMPLETE else None,
        params={"freeze_depth": k, "base_lr": lr},
        distributions=DISTS,
        user_attrs=record.trial_attrs(
            freeze_depth=k, train_time_s=seconds, trainable_parameters=1000 * (k + 1)
        ),
        intermediate_values={1: score} if score is not None else {},
    )
    trial.number = number
    trial.datetime_complete = AT + dt.timedelta(minutes=number) if finished else None
    return trial


def _run(
    curve: dict[tuple[int, float], float],
    start: dict[str, object],
    *,
    blocks: int = 17,
    limit: int = 30,
) -> list[Proposal]:
    """Every proposal of the procedure until it is done, each told its score from ``curve``
    (a configuration missing from it scores 0)."""
    trials: list[FrozenTrial] = []
    asked: list[Proposal] = []
    for number in range(limit):
        nxt = next_step(trials, start=start, blocks=blocks, tolerance=TOL, lr_bounds=(0.003, 0.1))
        if nxt is None:
            return asked
        assert isinstance(nxt, Proposal), nxt
        asked.append(nxt)
        k, lr = nxt.params["freeze_depth"], nxt.params["base_lr"]
        score = next((v for (ck, clr), v in curve.items() if ck == k and math.isclose(clr, lr)), 0)
        trials.append(_trial(k, lr, score, number=number))
    raise AssertionError(f"the procedure did not end in {limit} steps: {asked}")


def _steps(asked: list[Proposal]) -> list[tuple[str, int, float]]:
    return [(p.step.value, p.params["freeze_depth"], round(p.params["base_lr"], 4)) for p in asked]


def test_the_ladder_spans_the_blocks_and_holds_the_start() -> None:
    assert ladder(17) == [0, 3, 7, 12, 17]
    assert ladder(17, 5) == [0, 3, 5, 7, 12, 17]
    assert ladder(4) == [0, 1, 2, 3, 4]


def test_baseline_then_start_then_climb_while_it_gains_then_refine() -> None:
    # gains up to k = 12, flat at 17: the climb stops there, then LR around k = 12
    curve = {
        (0, 0.01): 0.80,
        (3, 0.01): 0.85,
        (7, 0.01): 0.90,
        (12, 0.01): 0.95,
        (17, 0.01): 0.951,
        (12, 0.03): 0.96,
        (9, 0.03): 0.958,
    }
    asked = _run(curve, START)
    assert _steps(asked) == [
        ("baseline", 0, 0.01),
        ("climb", 3, 0.01),
        ("climb", 7, 0.01),
        ("climb", 12, 0.01),
        ("climb", 17, 0.01),  # flat: ends the climb (FLAT = 1)
        ("refine", 12, 0.03),  # the higher LR gains: it becomes the best
        ("refine", 12, 0.09),
        ("refine", 9, 0.03),  # halfway to the next shallower depth tried (7)
        ("refine", 9, 0.09),
        ("refine", 9, 0.01),
        ("refine", 8, 0.03),
    ]
    assert FLAT == 1
    assert all(p.params["dropout"] == 0.1 for p in asked)  # the start's other values stay


def test_a_climb_that_keeps_gaining_goes_on_to_full_fine_tuning() -> None:
    curve = {(k, 0.01): 0.5 + 0.02 * k for k in range(18)}
    steps = _steps(_run(curve, START))
    climbed = [k for step, k, _ in steps if step == "climb"]
    assert climbed == [3, 7, 12, 17]


def test_the_climb_stops_after_the_flat_steps() -> None:
    # k = 3 gains, k = 7 is flat: nothing deeper is tried, though k = 17 would have been best
    curve = {(0, 0.01): 0.80, (3, 0.01): 0.90, (7, 0.01): 0.902, (17, 0.01): 0.99}
    steps = _steps(_run(curve, START))
    assert [k for step, k, _ in steps if step == "climb"] == [3, 7]
    assert all(k < 12 for _, k, _ in steps)


def test_a_start_high_up_still_gets_its_baseline_and_the_cheaper_depths() -> None:
    start = {"freeze_depth": 17, "base_lr": 0.003}
    curve = {(0, 0.003): 0.70, (17, 0.003): 0.90, (17, 0.009): 0.95, (8, 0.009): 0.951}
    steps = _steps(_run(curve, start))
    assert steps[:3] == [("baseline", 0, 0.003), ("start", 17, 0.003), ("refine", 17, 0.009)]
    assert ("refine", 8, 0.009) in steps  # halfway down to the baseline's depth


def test_the_next_step_waits_for_a_running_trial() -> None:
    trials = [_trial(0, 0.01, 0.8), _trial(3, 0.01, None, state=TrialState.RUNNING, number=1)]
    assert next_step(trials, start=START, blocks=17, tolerance=TOL) is PENDING


def test_a_pruned_rung_counts_as_no_gain() -> None:
    trials = [
        _trial(0, 0.01, 0.8),
        _trial(3, 0.01, 0.9, number=1),
        _trial(7, 0.01, 0.5, state=TrialState.PRUNED, number=2),
    ]
    nxt = next_step(trials, start=START, blocks=17, tolerance=TOL, lr_bounds=(0.003, 0.1))
    assert isinstance(nxt, Proposal) and nxt.step == Step.REFINE, nxt
    assert nxt.params["freeze_depth"] == 3


def test_a_one_second_probe_does_not_end_a_search_whose_fine_tunes_take_a_minute() -> None:
    probe = _trial(0, 0.01, 0.8, seconds=1.0)
    # only the probe measured: no unit yet, whatever the wall time spent
    assert over_budget(300.0, [probe], budget_runs=2.5) is None
    tune = _trial(12, 0.01, 0.95, seconds=60.0, number=1)
    assert over_budget(80.0, [probe, tune], budget_runs=2.5) is None  # 80 + 60 <= 150
    stopped = over_budget(100.0, [probe, tune], budget_runs=2.5)
    assert stopped is not None and stopped.kind == record.Stop.BUDGET
    assert "fine-tuning runs" in str(stopped) and "60 s a run" in str(stopped), stopped
    assert "trial #1" in str(stopped)
    # the procedure's start, when it fine-tunes, is the unit: not a longer climb step
    start = _trial(7, 0.01, 0.9, seconds=40.0, number=2)
    start.set_user_attr("step", "start")
    unit = over_budget(70.0, [probe, tune, start], budget_runs=2.5)
    assert unit is not None and "40 s a run, the start's fine-tune (trial #2)" in str(unit)


# --- through the engine --------------------------------------------------------------------

DATA = "synthetic:classes=3,per_class=16,size=16,difficulty=0.2,shift=0.0"


def _score(k: int, lr: float) -> float:
    """A made-up validation curve: deeper is better up to k = 9, LR 0.01 is right."""
    return 0.6 + 0.03 * min(k, 9) - 0.02 * abs(math.log(lr / 0.01))


def _outcome(config: TrialConfig) -> tuple[float, float]:
    seconds = 1.0 if config.freeze_depth == 0 else 20.0 + config.freeze_depth
    return _score(config.freeze_depth, config.base_lr), seconds


def _drive(session: SearchSession) -> list[Ticket]:
    return drive(session, _outcome)


def _session(tmp_path: Path, **options: object) -> SearchSession:
    request = SearchRequest(
        dataset=DATA,
        space="small_data",
        input_size=32,
        max_epochs=1,
        device="cpu",
        storage=f"sqlite:///{tmp_path / 'climb.db'}",
        study_name="climb",
        **options,  # type: ignore[arg-type]
    )
    p = prepare(request)
    session = SearchSession.open(p)
    session.enqueue_seeds(recommend_seeds(p).seeds)
    return session


def test_the_engine_runs_the_procedure_from_the_users_start_and_says_so(tmp_path: Path) -> None:
    session = _session(tmp_path, start="freeze_depth=0,base_lr=0.01", budget_runs=1000.0)
    ran = _drive(session)
    steps = [(t.written["step"], session.config(t).freeze_depth) for t in ran]
    # small_data searches k = 0 … 0.75 of the blocks: the ladder's rungs inside it
    assert steps[:4] == [("start", 0), ("climb", 3), ("climb", 7), ("climb", 12)], steps
    # the user's start is the baseline here: it ran first, the procedure asked for the rest
    assert [t.written["source"] for t in ran] == [record.USER] + [record.PROCEDURE] * (len(ran) - 1)
    start = record.read_study(session.study).start
    assert start is not None and start["source"] == record.USER
    assert (start["params"]["freeze_depth"], start["params"]["base_lr"]) == (0, 0.01)
    assert session.stop_reason is not None and session.stop_reason.kind == record.Stop.SETTLED
    assert "the procedure is done" in str(session.stop_reason)


def test_a_fixed_trial_budget_is_kept_under_the_procedure(tmp_path: Path) -> None:
    session = _session(tmp_path, start="freeze_depth=0,base_lr=0.01", stop="trials", trials=3)
    ran = _drive(session)
    assert len(ran) == 3
    assert session.stop_reason is not None and session.stop_reason.kind == record.Stop.TRIALS


@pytest.mark.parametrize("bad", ["k=3", "freeze_depth", "freeze_depth=-1", ""])
def test_a_bad_start_is_refused_naming_the_field(bad: str) -> None:
    with pytest.raises(ValueError, match="start"):
        SearchRequest(start=bad)


@pytest.mark.slow
def test_a_digits_search_from_feature_extraction_climbs_near_the_oracle(tmp_path: Path) -> None:
    """Real digits, real pretrained Lite0, real training (about 2–3 minutes on 2 cores).

    Started at feature extraction (at the recommender's learning rate for digits, so that
    only the depth is wrong), the procedure must climb to at least a third of the blocks and
    end within a point of the best cell of the project's digits oracle grid
    (docs/results/oracle-digits.json, same split, 32 px, 6 epochs). The budget is widened
    to 4 runs: at 32 px every rung costs nearly a full run, and the packaged 2.5 runs end a
    climb from k = 0 at k = 7 (docs/benchmarks.md, robustness), a limit this test does not
    measure."""
    oracle = json.loads(
        (Path(__file__).parent.parent / "docs/results/oracle-digits.json").read_text()
    )
    best = max(cell["best"] for cell in oracle["cells"])
    request = SearchRequest(
        dataset="digits",
        input_size=32,
        device="cpu",
        split_seed=0,
        storage=f"sqlite:///{tmp_path / 'climb.db'}",
        study_name="climb-from-zero",
        start="freeze_depth=0,base_lr=0.1",
        budget_runs=4.0,
    )
    study = run_search(request)
    decision = study_decision(study)
    assert decision is not None
    depths = [t.params.get("freeze_depth") for t in study.trials]
    assert depths[0] == 0, depths
    assert decision.chosen_params["freeze_depth"] >= math.ceil(17 / 3), (decision, depths)
    assert decision.chosen_score >= best - 0.01, (decision.chosen_score, best, depths)
