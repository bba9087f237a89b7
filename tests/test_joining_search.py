"""Two searches of one study at once on one SQLite file: the same command in two terminals.

The engine owns the queue: the recommender's seeds are enqueued once, whichever process gets
there first, and each process takes what is queued; a process that joins the study samples
with a seed of its own. No configuration runs twice, nothing is lost.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from autotransfer import record
from autotransfer.search import SearchRequest, SearchSession, Seed, Ticket, prepare

TINY = "synthetic:classes=3,per_class=24,size=16,difficulty=0.2,shift=0.0"


def _request(storage: str) -> SearchRequest:
    return SearchRequest(
        dataset=TINY,
        space="small_data",
        stop="trials",
        trials=6,
        max_epochs=1,
        input_size=32,
        storage=storage,
        study_name="joined",
        device="cpu",
        policy="sample",  # seeds then sampler: what a joining process must not repeat
    )


def _asked(session: SearchSession) -> Ticket:
    ticket = session.ask()
    assert isinstance(ticket, Ticket), ticket
    return ticket


def test_a_joining_session_takes_the_queue_and_samples_configurations_of_its_own(
    tmp_path: Path,
) -> None:
    p = prepare(_request(f"sqlite:///{tmp_path / 'joined.db'}"))
    first, second = SearchSession.open(p), SearchSession.open(p)  # two processes, one study
    seeds = [Seed({"freeze_depth": k, "base_lr": 0.05}) for k in (0, 1)]
    assert first.enqueue_seeds(seeds) == 2 and second.enqueue_seeds(seeds) == 0
    tickets = [_asked(s) for s in (first, second, first, second, first, second)]
    sources = [t.written["source"] for t in tickets]
    assert sources == [record.RECOMMENDER] * 2 + [record.SAMPLER] * 4  # the queue first
    configurations = [json.dumps(t.trial.params, sort_keys=True) for t in tickets]
    assert len(set(configurations)) == len(configurations), configurations
    assert record.read_study(first.study).opens == 2
    # the first opener of a fresh study samples as a search alone does (same seed, same
    # trials); the seeds' other parameters are drawn by the sampler of whoever takes them
    alone = SearchSession.open(prepare(_request(f"sqlite:///{tmp_path / 'alone.db'}")))
    alone.enqueue_seeds(seeds)
    assert _asked(alone).trial.params == tickets[0].trial.params


@pytest.mark.slow  # two real searches of eight short trials side by side on two cores: ~20 s
def test_two_searches_of_one_study_never_repeat_a_configuration(tmp_path: Path) -> None:
    db, name, trials = tmp_path / "study.db", "joined", 8
    command = [
        sys.executable,
        "-m",
        "autotransfer",
        "search",
        *("--dataset", "synthetic:classes=3,per_class=20,size=32", "--input-size", "32"),
        *("--space", "small_data", "--stop", "trials", "--trials", str(trials)),
        *("--max-epochs", "2", "--recommend", "--device", "cpu", "--threads", "1"),
        *("--storage", f"sqlite:///{db}", "--study-name", name, "--plots", str(tmp_path)),
    ]
    logs = [tmp_path / f"search-{i}.log" for i in range(2)]
    procs = []
    for log in logs:
        with log.open("wb") as out:
            procs.append(
                subprocess.Popen(command, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
            )
    try:
        codes = [proc.wait(timeout=400) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    outputs = [log.read_text() for log in logs]
    assert codes == [0, 0], outputs
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{db}")
    final = study.get_trials(deepcopy=False)
    states = [t.state for t in final]
    finished = [t for t in final if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == trials, [(t.number, t.state, t.params) for t in final]
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states, states
    assert not [t for t in final if t.state == TrialState.FAIL and not record.is_skipped(t)]
    configurations = [json.dumps(t.params, sort_keys=True) for t in final]
    assert len(set(configurations)) == len(configurations), configurations
    info = record.read_study(study)
    assert info.seeds_enqueued and info.opens == 2
    seeded = [t for t in final if record.is_seeded(t)]
    assert len(seeded) == info.seeds_enqueued, [(t.number, t.params) for t in seeded]
