"""Studies on the Optuna backend: reproducibility, pruning, seeds, failures, resume, workers."""

from __future__ import annotations

import math
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from autotransfer.record import Outcome, read_study, read_trial
from autotransfer.search import (
    EpochReport,
    SearchRequest,
    SearchSession,
    Seed,
    Ticket,
    TrialEnd,
    prepare,
    run_search,
)
from autotransfer.search._optuna import work
from autotransfer.search._policy import study_pruner
from autotransfer.search._store import quiet_heartbeat
from autotransfer.space import load_spec, optuna_pruner, optuna_sampler, parse_spec, suggest
from autotransfer.storage import open_storage as make_storage

TINY_DATA = "synthetic:classes=3,per_class=24,size=16,difficulty=0.2,shift=0.0"


def _study(url: str, spec_name: str = "default", seed: int = 0, name: str = "s") -> optuna.Study:
    spec = load_spec(spec_name)
    return optuna.create_study(
        storage=make_storage(url),
        study_name=name,
        direction="maximize",
        sampler=optuna_sampler(spec, seed=seed),
        pruner=study_pruner(spec),
        load_if_exists=True,
    )


def _param_sequence(tmp_path: Path, seed: int, tag: str) -> list[dict[str, object]]:
    url = f"sqlite:///{tmp_path / tag}.db"
    study, spec = _study(url, seed=seed), load_spec("default")

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, spec, 17)
        return -abs(params["freeze_depth"] - 5) - abs(math.log10(params["base_lr"]) + 1.5)

    study.optimize(objective, n_trials=12)
    return [t.params for t in study.trials]


def test_same_seed_same_trials_other_seed_other_trials(tmp_path: Path) -> None:
    a = _param_sequence(tmp_path, seed=0, tag="a")
    b = _param_sequence(tmp_path, seed=0, tag="b")
    c = _param_sequence(tmp_path, seed=1, tag="c")
    assert len(a) == 12 and a == b
    assert a != c


def test_pruner_prunes_weak_known_curves_and_storage_says_pruned(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/p.db"
    spec = parse_spec(
        {
            "name": "p",
            "parameters": {"base_lr": {"type": "float", "low": 0.0, "high": 1.0}},
            "budget": {
                "max_epochs": 9,
                "min_epochs": 1,
                "pruner": {"type": "successive_halving", "reduction_factor": 3},
                "sampler": {"type": "random"},
            },
        },
        source="t",
    )
    study = optuna.create_study(
        storage=make_storage(url),
        study_name="p",
        direction="maximize",
        sampler=optuna_sampler(spec, seed=0),
        pruner=optuna_pruner(spec),
    )
    epochs_run: dict[int, int] = {}

    def objective(trial: optuna.Trial) -> float:
        quality = trial.suggest_float("base_lr", 0.0, 1.0)  # the curve's ceiling
        value = 0.0
        for epoch in range(1, 10):
            value = quality * (1 - math.exp(-epoch))
            trial.report(value, epoch)
            epochs_run[trial.number] = epoch
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    study.optimize(objective, n_trials=30)
    reloaded = optuna.load_study(study_name="p", storage=make_storage(url))
    pruned = reloaded.get_trials(states=(TrialState.PRUNED,))
    complete = reloaded.get_trials(states=(TrialState.COMPLETE,))
    assert len(pruned) + len(complete) == 30 and len(pruned) >= 10
    assert sum(epochs_run[t.number] < 9 for t in pruned) >= 10, "most stop well before the end"
    best_quality = max(t.params["base_lr"] for t in reloaded.trials)
    assert max(t.params["base_lr"] for t in complete) == best_quality, "the best curve survives"
    assert sum(epochs_run.values()) < 0.7 * 30 * 9, "pruning saved epochs"


def test_failing_trial_is_recorded_and_the_study_completes(tmp_path: Path) -> None:
    request = SearchRequest(
        dataset=TINY_DATA,
        space="small_data",
        stop="trials",
        trials=5,
        max_epochs=1,
        input_size=32,
        storage=f"sqlite:///{tmp_path}/f.db",
        study_name="f",
        device="cpu",
    )
    session = SearchSession.open(prepare(request))
    calls: list[int] = []

    def pretend(config: object, dataset: object, *, on_epoch: Any, **_: object) -> TrialEnd:
        number = len(calls)  # one worker: the n-th call trains trial n
        calls.append(number)
        if number in (1, 3):
            raise RuntimeError(f"CUDA out of memory (pretend) in trial {number}")
        on_epoch(
            EpochReport(
                epoch=1, val_accuracy=0.5, elapsed_s=0.1, trainable_parameters=9, val_score=0.5
            )
        )
        return TrialEnd(0.5, 1, 0.5, 0.1, best_val_score=0.5)

    work(session, trainer=pretend)
    study = session.study
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert [t.number for t in failed] == [1, 3]
    assert read_trial(failed[0]).error == "RuntimeError: CUDA out of memory (pretend) in trial 1"
    assert "Traceback" in (read_trial(failed[0]).traceback or "")
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 5


def test_real_search_runs_seeds_first_and_records_trials(tmp_path: Path) -> None:
    request = SearchRequest(
        dataset=TINY_DATA,
        space="small_data",
        stop="trials",
        trials=5,
        max_epochs=2,
        input_size=32,
        storage=f"sqlite:///{tmp_path}/real.db",
        study_name="real",
        device="cpu",
        policy="sample",  # the seeds, then the sampler (tests/test_climb.py: the procedure)
    )
    seeds = [Seed({"freeze_depth": 0, "base_lr": 0.05}), Seed({"freeze_depth": 2, "base_lr": 0.02})]
    study = run_search(request, seeds=seeds)
    trials = study.get_trials()
    assert len([t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]) == 5
    assert [read_trial(t).source for t in trials[:2]] == ["recommender", "recommender"]
    assert all(read_trial(t).source == "sampler" for t in trials[2:])
    assert trials[0].params["freeze_depth"] == 0 and trials[1].params["base_lr"] == 0.02
    first = read_trial(trials[0])
    for value in (
        first.train_time_s,
        first.trainable_parameters,
        first.freeze_depth,
        first.backbone,
        first.weights,
        first.dataset_fingerprint,
        first.num_blocks,
        first.epochs_run,
    ):
        assert value is not None, first
    assert first.backbone == "efficientnet_lite0"
    assert first.dataset_fingerprint == prepare(request).dataset.fingerprint
    assert read_study(study).num_blocks == 17 and read_study(study).seeds_enqueued == 2
    # running it again resumes: nothing more to do, seeds not enqueued twice
    again = run_search(request, seeds=seeds)
    assert len(again.get_trials()) == len(trials)


def test_cancel_stops_at_the_next_epoch_but_keeps_a_finished_trial(tmp_path: Path) -> None:
    request = SearchRequest(
        dataset=TINY_DATA,
        space="small_data",
        stop="trials",
        trials=3,
        max_epochs=3,
        input_size=32,
        storage=f"sqlite:///{tmp_path}/cancel.db",
        study_name="cancel",
        device="cpu",
    )
    seeds = [Seed({"freeze_depth": 1, "base_lr": 0.05, "lp_ft_epochs": 0})]
    asked: list[int] = []

    def at_last_epoch() -> bool:
        # asked by the worker before the trial, after epochs 1 and 2, then (cancel arrived
        # during epoch 3) True from the 4th ask on: the 3rd epoch's end must not fail the
        # finished trial, and the worker must start no other
        asked.append(1)
        return len(asked) >= 4

    study = run_search(request, seeds=seeds, should_stop=at_last_epoch)
    (only,) = study.get_trials()
    assert only.state == TrialState.COMPLETE and read_trial(only).epochs_run == 3, only
    assert len(asked) == 4

    asked.clear()
    request = request.model_copy(update={"study_name": "cancel-early"})
    # a cancel arriving during epoch 1 (True from the 2nd ask) stops the trial after it
    study = run_search(
        request, seeds=seeds, should_stop=lambda: bool(asked.append(1)) or len(asked) >= 2
    )
    (only,) = study.get_trials()
    assert only.state == TrialState.FAIL and read_trial(only).epochs_run == 1, only
    assert read_trial(only).ended == Outcome.CANCELLED
    assert read_trial(only).error == "TrialCancelled: cancelled after epoch 1"


class _AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


@pytest.mark.parametrize(("epochs", "state", "epochs_run"), [(1, "COMPLETE", 1), (2, "PRUNED", 1)])
def test_a_trial_is_never_pruned_after_its_last_epoch(
    tmp_path: Path, epochs: int, state: str, epochs_run: int
) -> None:
    request = SearchRequest(
        dataset=TINY_DATA,
        space="small_data",
        stop="trials",
        trials=1,
        max_epochs=epochs,
        input_size=32,
        storage=f"sqlite:///{tmp_path}/last.db",
        study_name="last",
        device="cpu",
    )
    p = prepare(request)
    study = optuna.create_study(
        storage=make_storage(request.storage), direction="maximize", pruner=_AlwaysPrune()
    )
    session = SearchSession(p, study)
    session.enqueue_seeds(
        [Seed({"freeze_depth": 1, "base_lr": 0.05, "lp_ft_epochs": 0, "augment": False})]
    )
    work(session)
    (trial,) = study.trials
    assert trial.state.name == state and read_trial(trial).epochs_run == epochs_run


def test_split_seed_fixes_the_validation_set_across_study_seeds(tmp_path: Path) -> None:
    def fingerprint(**seeds: int) -> str:
        request = SearchRequest(
            dataset=TINY_DATA, space="small_data", input_size=32, device="cpu", **seeds
        )
        return prepare(request).dataset.fingerprint

    base = fingerprint(seed=0)
    assert fingerprint(seed=1, split_seed=0) == base == fingerprint(split_seed=0)
    assert fingerprint(seed=1) != base  # by default the study's seed also draws the split
    with pytest.raises(ValueError, match="split_seed"):
        SearchRequest(dataset=TINY_DATA, split_seed=-1)


def test_resuming_with_other_settings_is_refused(tmp_path: Path) -> None:
    base = dict(
        dataset=TINY_DATA,
        space="small_data",
        stop="trials",
        trials=1,
        max_epochs=1,
        input_size=32,
        storage=f"sqlite:///{tmp_path}/r.db",
        study_name="r",
        device="cpu",
    )
    run_search(SearchRequest(**base))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="was created with backbone='efficientnet_lite0'"):
        run_search(SearchRequest(**{**base, "backbone": "resnet18", "weights": "none"}))  # type: ignore[arg-type]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "autotransfer", *args]


def _counts(url: str, name: str) -> dict[TrialState, int]:
    try:
        study = optuna.load_study(
            study_name=name, storage=make_storage(url, heartbeat_interval=None)
        )
    except KeyError:
        return {}
    counts: dict[TrialState, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state] = counts.get(t.state, 0) + 1
    return counts


SEARCH_ARGS = [
    "search",
    "--dataset",
    TINY_DATA,
    "--space",
    "small_data",
    "--stop",
    "trials",
    "--max-epochs",
    "2",
    "--input-size",
    "32",
    "--device",
    "cpu",
    "--threads",
    "1",
]


def test_sigkilled_search_resumes_to_exactly_the_requested_trials(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/kill.db"
    args = _cli(
        *SEARCH_ARGS,
        "--trials",
        "4",
        "--storage",
        url,
        "--study-name",
        "k",
        "--heartbeat-interval",
        "1",
        "--grace-period",
        "3",
    )
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # kill once a trial finished and another is running
        c = _counts(url, "k")
        if c.get(TrialState.COMPLETE, 0) + c.get(TrialState.PRUNED, 0) >= 1 and c.get(
            TrialState.RUNNING
        ):
            break
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _counts(url, "k").get(TrialState.RUNNING) == 1, "the killed trial is left RUNNING"
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    c = _counts(url, "k")
    assert c.get(TrialState.COMPLETE, 0) + c.get(TrialState.PRUNED, 0) == 4
    assert c.get(TrialState.FAIL) == 1 and not c.get(TrialState.RUNNING)


def _beating(tmp_path: Path, name: str) -> SearchRequest:
    """A tiny three-trial search whose trials go stale 2 s after their last heartbeat."""
    return SearchRequest(
        dataset=TINY_DATA,
        space="small_data",
        input_size=32,
        max_epochs=1,
        device="cpu",
        storage=f"sqlite:///{tmp_path / name}.db",
        study_name=name,
        stop="trials",
        trials=3,
        heartbeat_interval=1,
        grace_period=2,
    )


def test_a_worker_killed_right_after_asking_leaves_a_trial_that_goes_stale(
    tmp_path: Path,
) -> None:
    """The window the SIGKILL test can hit by chance: the trial exists (RUNNING) and the
    worker dies before it wrote the trial's parameters or began training. Its first
    heartbeat was recorded when it was asked, so the next process to ask fails it as stale
    and queues it again, instead of waiting on it for ever."""
    request = _beating(tmp_path, "asked")
    first = SearchSession.open(prepare(request))
    ticket = first.ask(heartbeat=True)
    assert isinstance(ticket, Ticket)
    # the worker is gone: nothing beats for the trial from here on
    time.sleep(3)
    second = SearchSession.open(prepare(request))
    again = second.ask(heartbeat=True)
    assert isinstance(again, Ticket)
    dead = second.study.trials[ticket.number]
    assert dead.state == TrialState.FAIL
    assert read_trial(dead).ended == Outcome.STALE
    assert read_trial(again.trial).retry_of == ticket.number


def test_a_retry_of_a_queued_trial_killed_mid_parameters_gets_all_of_them(
    tmp_path: Path,
) -> None:
    """A queued trial (a seed, a procedure's step) whose worker died while writing its
    parameters is retried with the whole configuration it was queued with, and its step."""
    request = _beating(tmp_path, "partial")
    first = SearchSession.open(prepare(request))
    queued = {"freeze_depth": 3, "base_lr": 0.02, "dropout": 0.1}
    first.study.enqueue_trial(queued, user_attrs={"source": "procedure", "step": "climb"})
    with quiet_heartbeat():  # the worker asks, beats, writes one parameter, then dies
        trial = first.study.ask()
    first.study._storage.record_heartbeat(trial._trial_id)  # type: ignore[attr-defined]
    trial.suggest_int("freeze_depth", 0, 17)
    time.sleep(3)
    second = SearchSession.open(prepare(request))
    again = second.ask(heartbeat=True)
    assert isinstance(again, Ticket)
    assert read_trial(again.trial).retry_of == trial.number
    assert read_trial(again.trial).step == "climb"
    params = second.study.trials[again.number].params  # as the session suggested them
    assert {k: params[k] for k in queued} == queued, params


def test_two_workers_on_postgres_lose_and_duplicate_nothing(
    postgres_url: str, tmp_path: Path
) -> None:
    # trials long enough (4 epochs) that the spawned second worker joins before the first
    # process has finished the whole study on its own
    args = _cli(
        *SEARCH_ARGS,
        "--trials",
        "8",
        "--max-epochs",
        "4",
        "--storage",
        postgres_url,
        "--study-name",
        "pg",
        "--workers",
        "2",
    )
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="pg", storage=make_storage(postgres_url))
    trials = study.get_trials()
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 8 and len(trials) == 8, [t.state for t in trials]
    assert sorted(t.number for t in trials) == list(range(8))
    assert len({read_trial(t).worker for t in trials}) == 2, "both processes ran trials"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_optuna_cli_and_dashboard_see_the_study(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/dash.db"
    study = _study(url, name="dash-study")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    optuna_cli = Path(sys.executable).with_name("optuna")
    listed = subprocess.run(
        [str(optuna_cli), "studies", "--storage", url], capture_output=True, text=True, timeout=120
    )
    assert listed.returncode == 0 and "dash-study" in listed.stdout, listed.stderr
    port = _free_port()
    server = subprocess.Popen(
        _cli("dashboard", "--storage", url, "--port", str(port)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline, body = time.monotonic() + 60, ""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as r:
                    body = r.read().decode()
                    break
            except OSError:
                time.sleep(0.3)
        assert "dash-study" in body
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_studies_show_reports_the_decision_and_writes_plots(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/show.db"
    request = SearchRequest(
        dataset=TINY_DATA,
        space="small_data",
        stop="trials",
        trials=3,
        max_epochs=1,
        input_size=32,
        storage=url,
        study_name="show",
        device="cpu",
    )
    run_search(request)
    shown = subprocess.run(
        _cli("studies", "show", "show", "--storage", url, "--plot", "--plot-dir", str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert "chosen freeze depth" in shown.stdout and "accuracy by freeze depth" in shown.stdout
    for suffix in ("depth", "curves"):
        png = tmp_path / f"show-{suffix}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    listed = subprocess.run(
        _cli("studies", "list", "--storage", url), capture_output=True, text=True, timeout=120
    )
    assert "show" in listed.stdout


def test_export_writes_config_weights_and_card(tmp_path: Path) -> None:
    import torch
    import yaml

    from autotransfer.backbones import create_backbone

    url = f"sqlite:///{tmp_path}/exp.db"
    out = tmp_path / "export"
    args = _cli(
        *SEARCH_ARGS,
        "--trials",
        "2",
        "--max-epochs",
        "1",
        "--storage",
        url,
        "--study-name",
        "exp",
        "--export",
        str(out),
    )
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load((out / "best_config.yaml").read_text())
    assert config["study"] == "exp" and config["config"]["backbone"] == "efficientnet_lite0"
    card = (out / "model_card.md").read_text()
    assert "freeze_depth" in card and "dataset_fingerprint" in card
    model = create_backbone("efficientnet_lite0", num_classes=3, weights="none", input_size=32)
    state = torch.load(out / "model.pt", weights_only=True)
    model.model.load_state_dict(state)


def test_journal_storage_and_multi_objective_pareto(tmp_path: Path) -> None:
    from autotransfer.search import study_decision

    space = tmp_path / "pareto.yaml"
    space.write_text(
        "name: pareto\n"
        "parameters:\n"
        "  freeze_depth: {type: depth, blocks: [0, 2, all]}\n"
        "  base_lr: {type: float, low: 0.01, high: 0.1, log: true}\n"
        "budget: {trials: 3, max_epochs: 1, objective: accuracy_and_cost,"
        " pruner: {type: none}, sampler: {type: random}}\n"
    )
    url = f"journal://{tmp_path}/study.log"
    request = SearchRequest(
        dataset=TINY_DATA,
        space=str(space),
        input_size=32,
        storage=url,
        study_name="pareto",
        device="cpu",
    )
    study = run_search(request)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 3
    decision = study_decision(study)
    assert decision is not None and decision.pareto_trials
    assert (tmp_path / "study.log").stat().st_size > 0
    again = run_search(request)  # resumes from the journal: nothing left to run
    assert len(again.get_trials()) == 3


def _pretend(config: object, dataset: object, *, on_epoch: Any, **_: object) -> TrialEnd:
    """A trainer that trains nothing: one epoch at 0.5 (the engine's records, not learning)."""
    on_epoch(
        EpochReport(epoch=1, val_accuracy=0.5, elapsed_s=0.1, trainable_parameters=9, val_score=0.5)
    )
    return TrialEnd(0.5, 1, 0.5, 0.1, best_val_score=0.5)


def _engine_request(tmp_path: Path, **update: Any) -> SearchRequest:
    fields: dict[str, Any] = dict(
        dataset=TINY_DATA,
        space="small_data",
        stop="trials",
        trials=2,
        max_epochs=1,
        input_size=32,
        storage=f"sqlite:///{tmp_path}/engine.db",
        study_name="engine",
        device="cpu",
    )
    return SearchRequest(**{**fields, **update})


def test_a_seed_killed_with_its_worker_is_failed_with_why_and_run_once_more(
    tmp_path: Path,
) -> None:
    p = prepare(_engine_request(tmp_path, heartbeat_interval=1, grace_period=2))
    dead = SearchSession.open(p)
    dead.enqueue_seeds([Seed({"freeze_depth": 1, "base_lr": 0.05})])
    taken = dead.ask()  # the worker that takes the seed, beats once, and is killed
    assert isinstance(taken, Ticket)
    dead.study._storage.record_heartbeat(taken.trial._trial_id)
    time.sleep(3.5)  # past the grace period
    alive = SearchSession.open(p)
    work(alive, trainer=_pretend)
    killed, *rest = alive.study.get_trials()
    assert killed.state == TrialState.FAIL
    assert (read_trial(killed).error or "").startswith("stale heartbeat: its worker stopped")
    (retry,) = [t for t in rest if read_trial(t).retry_of == killed.number]
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params
    assert read_trial(retry).source == "recommender"  # still the recommender's seed


def test_seeds_an_ended_search_never_ran_are_failed_then_run_by_a_longer_one(
    tmp_path: Path,
) -> None:
    seeds = [Seed({"freeze_depth": k, "base_lr": 0.05}) for k in (0, 1, 2)]
    session = SearchSession.open(prepare(_engine_request(tmp_path, trials=1)))
    session.enqueue_seeds(seeds)
    work(session, trainer=_pretend)
    session.close()
    trials = session.study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.FAIL]
    assert all(read_trial(t).ended == Outcome.SKIPPED for t in trials[1:])
    assert [t.params["freeze_depth"] for t in trials[1:]] == [1, 2]  # recorded as they were
    longer = SearchSession.open(prepare(_engine_request(tmp_path, trials=3)))
    longer.enqueue_seeds(seeds)  # already seeded: the skipped seeds come back, once
    work(longer, trainer=_pretend)
    longer.close()
    again = longer.study.get_trials()[3:]
    assert [read_trial(t).retry_of for t in again] == [1, 2]
    assert all(t.state == TrialState.COMPLETE for t in again) and len(again) == 2


def test_opening_a_study_logs_no_existing_study_line_and_names_its_metric(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    p = prepare(_engine_request(tmp_path))
    optuna.logging.enable_propagation()  # Optuna's INFO lines reach caplog
    try:
        with caplog.at_level("INFO", logger="optuna"):
            first = SearchSession.open(p)
            SearchSession.open(p)  # a second worker, or a resumed search
    finally:
        optuna.logging.disable_propagation()
    assert not [r for r in caplog.records if "Using an existing study" in r.getMessage()]
    assert first.study.metric_names == ["accuracy"]  # the dashboard's label, not "Objective 0"


def test_a_resumed_run_search_runs_the_seeds_the_first_run_skipped(tmp_path: Path) -> None:
    seeds = [Seed({"freeze_depth": k, "base_lr": 0.05}) for k in (0, 1, 2)]
    first = run_search(_engine_request(tmp_path, trials=1), seeds=seeds)
    assert sum(read_trial(t).ended == Outcome.SKIPPED for t in first.trials) == 2
    again = run_search(_engine_request(tmp_path, trials=3), seeds=seeds)
    retried = [t for t in again.trials if read_trial(t).retry_of is not None]
    assert [read_trial(t).retry_of for t in retried] == [1, 2]
    assert all(t.state == TrialState.COMPLETE for t in retried)
