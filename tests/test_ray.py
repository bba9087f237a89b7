"""The Ray Tune backend: the compiler's Ray half, a real two-node cluster, resuming a run.

The contract shared with the Optuna backend (seeds first, stopping, failures, records) is in
``test_backend_contract.py``.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, MedianStoppingRule
from ray.tune.search.optuna import OptunaSearch

from autotransfer import record
from autotransfer.errors import UserInputError
from autotransfer.record import Outcome, read_study, read_trial
from autotransfer.search import SearchRequest, SearchSession, prepare, run_search
from autotransfer.space import (
    load_spec,
    optuna_distributions,
    packaged_specs,
    parse_spec,
    ray_scheduler,
    ray_search_space,
)
from autotransfer.storage import open_storage as make_storage

DATA = "synthetic:classes=3,per_class=24,size=16,difficulty=0.2,shift=0.0"
# Ray's own processes should not write into the home folder (auth token) or phone home
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)

EVERY_KIND = {
    "name": "kinds",
    "parameters": {
        "freeze_depth": {"type": "depth", "blocks": [0, 2, "all"]},
        "base_lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
        "layer_decay": {"type": "float", "low": 0.5, "high": 1.0, "step": 0.1},
        "dropout": {"type": "float", "low": 0.0, "high": 0.3},
        "batch_size": {"type": "int", "low": 8, "high": 64, "step": 8},
        "lp_ft_epochs": {"type": "int", "low": 0, "high": 3},
        "warmup_epochs": {"type": "int", "low": 1, "high": 16, "log": True},
        "optimizer": {"type": "categorical", "choices": ["sgd", "adamw"]},
        "augment": {"type": "bool"},
    },
}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "autotransfer", *args]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def _ray_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key, value in RAY_ENV.items():
        monkeypatch.setenv(key, value)
    # each node's feature cache (Ray's workers inherit the environment of who started them)
    monkeypatch.setenv("AUTOTRANSFER_CACHE_DIR", str(tmp_path / "node-cache"))


# --- the compiler ---------------------------------------------------------------------------


@pytest.mark.parametrize("blocks", [9, 17])
def test_ray_domains_convert_back_to_the_same_optuna_distributions(blocks: int) -> None:
    specs = [parse_spec(EVERY_KIND, source="t")]
    specs += [load_spec(n) for n in packaged_specs()]
    checked = 0
    for spec in specs:
        if any(p.when for p in spec.parameters.values()):
            continue
        converted = OptunaSearch.convert_search_space(ray_search_space(spec, blocks))
        assert converted == optuna_distributions(spec, blocks), spec.name
        checked += 1
    assert checked >= 4


def test_conditions_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"\['momentum'\] of space 'full_finetune' have when"):
        ray_search_space(load_spec("full_finetune"), 17)


def _budget(**budget: object) -> dict[str, object]:
    return {**EVERY_KIND, "budget": {"max_epochs": 9, **budget}}


def test_schedulers_follow_the_spec_pruner() -> None:
    sh = ray_scheduler(
        parse_spec(
            _budget(
                min_epochs=1,
                pruner={
                    "type": "successive_halving",
                    "reduction_factor": 3,
                    "min_early_stopping_rate": 1,
                },
            ),
            source="t",
        )
    )
    assert isinstance(sh, AsyncHyperBandScheduler)
    assert sh._max_t == 9 and len(sh._brackets) == 1
    assert [rung for rung, _ in sh._brackets[0]._rungs][-1] == 3  # 1 · 3 ** 1
    hb = ray_scheduler(parse_spec(_budget(pruner={"type": "hyperband"}), source="t"))
    assert isinstance(hb, AsyncHyperBandScheduler) and len(hb._brackets) == 3  # log3(9) + 1
    median = parse_spec(_budget(pruner={"type": "median", "n_warmup_steps": 2}), source="t")
    assert isinstance(ray_scheduler(median), MedianStoppingRule)
    none = parse_spec(_budget(pruner={"type": "none"}), source="t")
    assert isinstance(ray_scheduler(none), FIFOScheduler)


def test_bad_ray_settings_are_refused_before_any_trial(tmp_path: Path) -> None:
    base = dict(
        dataset=DATA,
        space="small_data",
        stop="trials",
        trials=1,
        max_epochs=1,
        input_size=32,
        storage=f"sqlite:///{tmp_path}/bad.db",
        device="cpu",
        backend="ray",
        recommend=False,
    )
    with pytest.raises(UserInputError, match=r"ray_address must be .* but got 'nohost'"):
        run_search(SearchRequest(**{**base, "ray_address": "nohost"}))  # type: ignore[arg-type]
    with pytest.raises(UserInputError, match="workers=2 is for the Optuna backend"):
        run_search(SearchRequest(**{**base, "workers": 2}))  # type: ignore[arg-type]


def test_a_trial_no_node_can_hold_is_refused_not_left_pending(tmp_path: Path) -> None:
    import ray

    request = SearchRequest(
        dataset=DATA,
        space="small_data",
        stop="trials",
        trials=1,
        max_epochs=1,
        input_size=32,
        storage=f"sqlite:///{tmp_path}/gpu.db",
        device="cpu",
        backend="ray",
        recommend=False,
        gpus_per_trial=0.5,
    )
    gpus = 0  # this machine's GPUs as Ray counts them
    if Path("/proc/driver/nvidia/gpus").exists():
        gpus = len(list(Path("/proc/driver/nvidia/gpus").iterdir()))
    if gpus:
        pytest.skip("this machine has a GPU: half a GPU per trial fits")
    with pytest.raises(UserInputError, match=r"0\.5 GPUs \(gpus_per_trial\)"):
        run_search(request, seeds=[])
    assert not ray.is_initialized(), "the local Ray is shut down after the refusal"


def test_trials_a_killed_driver_left_running_are_failed(tmp_path: Path) -> None:
    from autotransfer.search._ray import _fail_orphans

    url = f"sqlite:///{tmp_path}/o.db"
    request = SearchRequest(dataset=DATA, space="small_data", input_size=32, storage=url)
    study = optuna.create_study(storage=make_storage(url))
    for ray_id in ("a", "b", None):
        trial = study.ask()
        if ray_id:
            for key, value in record.trial_attrs(ray_trial_id=ray_id).items():
                trial.set_user_attr(key, value)
    _fail_orphans(SearchSession(prepare(request), study), known={"b"})  # the experiment holds b
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.RUNNING, TrialState.RUNNING]
    assert read_trial(study.trials[0]).ended == Outcome.ORPHANED


# --- a real two-node cluster ----------------------------------------------------------------


def _process_tree(marker: str) -> set[int]:
    """Processes whose command line holds ``marker`` (our cluster's temp folder), with
    their descendants (Ray's worker processes); nothing of any other Ray instance."""
    parents: dict[int, int] = {}
    pids: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        if marker.encode() in cmdline:
            pids.add(int(entry.name))
    while True:
        children = {pid for pid, parent in parents.items() if parent in pids} - pids
        if not children:
            return pids
        pids |= children


def _stop_cluster(marker: str) -> None:
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
        pids = _process_tree(marker)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while _process_tree(marker) and time.monotonic() < deadline:
            time.sleep(0.2)


@contextlib.contextmanager
def _cluster(hide: Path | None = None) -> Iterator[str]:
    """``ray start --head`` plus a second node joining it, one CPU each, on loopback.

    ``hide``: the nodes run in a mount namespace of their own where that folder is an empty
    tmpfs, as if they were other machines (containers) that do not share it. Stopped
    afterwards, pass or fail, by killing exactly the processes that belong to this cluster
    (``ray stop`` would stop every Ray instance on the machine).
    """
    if not Path("/proc/self/cmdline").exists():
        pytest.skip("the cluster clean-up reads /proc (Linux)")
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths
    port = _free_port()
    env = {**os.environ, **RAY_ENV}
    ray_cli = str(Path(sys.executable).with_name("ray"))
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--disable-usage-stats"]
    head = ["--head", "--port", str(port), "--temp-dir", temp_dir, "--include-dashboard", "false"]

    def agent() -> list[str]:  # Ray's fixed default would clash with other local instances
        return ["--dashboard-agent-listen-port", str(_free_port())]

    try:
        for args in (head, ["--address", f"127.0.0.1:{port}"]):
            command = [ray_cli, "start", *args, *common, *agent()]
            if hide is not None:
                mount = f'mount -t tmpfs tmpfs {shlex.quote(str(hide))} && exec "$@"'
                command = ["unshare", "-m", "--propagation", "private", "sh", "-c", mount, "sh"]
                command += [ray_cli, "start", *args, *common, *agent()]
            started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
            assert started.returncode == 0, started.stderr[-3000:]
        yield f"127.0.0.1:{port}"
    finally:
        _stop_cluster(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def two_node_cluster() -> Iterator[str]:
    with _cluster() as address:
        yield address


@pytest.mark.slow
def test_cli_search_on_a_two_node_cluster(two_node_cluster: str, tmp_path: Path) -> None:
    # two learning rates of three cannot learn in two epochs: ASHA must stop such trials
    space = {
        "name": "cluster",
        "parameters": {
            "freeze_depth": {"type": "depth", "blocks": [0, 1]},
            "base_lr": {"type": "categorical", "choices": [1.0e-7, 2.0e-7, 0.1]},
        },
        "fixed": {"optimizer": "sgd", "momentum": 0.9, "batch_size": 16},
        "budget": {
            "trials": 6,
            "max_epochs": 2,
            "pruner": {"type": "successive_halving", "reduction_factor": 3},
            "sampler": {"type": "random"},
        },
    }
    (tmp_path / "cluster.yaml").write_text(yaml.safe_dump(space))
    url = f"sqlite:///{tmp_path}/cluster.db"
    args = ["search", "--dataset", DATA, "--space", str(tmp_path / "cluster.yaml")]
    args += ["--input-size", "32", "--device", "cpu", "--storage", url, "--study-name", "c"]
    args += ["--backend", "ray", "--ray-address", two_node_cluster, "--threads", "1"]
    done = subprocess.run(_cli(*args), cwd=tmp_path, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "chosen freeze depth" in done.stdout

    study = optuna.load_study(study_name="c", storage=make_storage(url))
    trials = study.get_trials()
    assert len([t for t in trials if t.state in FINISHED]) == 6
    assert len({read_trial(t).ray_node for t in trials}) == 2, "trials ran on both nodes"
    seeds = [t for t in trials if read_trial(t).source == "recommender"]
    assert seeds and [t.number for t in seeds] == list(range(len(seeds))), "seeds ran first"
    assert all(t.state in FINISHED for t in seeds)
    hopeless = [t for t in trials if t.params["base_lr"] < 1e-6]
    assert len(hopeless) >= 2, "the scenario needs weak trials"
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    assert pruned and all(read_trial(t).epochs_run == 1 for t in pruned), "ASHA stopped some"
    for t in study.get_trials(states=FINISHED):
        info = read_trial(t)
        for value in (info.backbone, info.weights, info.freeze_depth, info.num_blocks):
            assert value is not None, (t.number, info)
        assert info.input_size is not None
        assert info.dataset_fingerprint == read_study(study).dataset_fingerprint
    cached = [p for p in (tmp_path / "node-cache").rglob("*") if p.is_file()]
    assert cached, "the nodes cached frozen features"
    # the study is where the Optuna tools look for it
    listed = subprocess.run(
        [str(Path(sys.executable).with_name("optuna")), "studies", "--storage", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0 and " c " in listed.stdout, listed.stderr


# --- a local Ray: conditions, start and shut-down, resuming ---------------------------------


@pytest.mark.slow
def test_conditional_space_on_a_local_ray_started_and_shut_down(tmp_path: Path) -> None:
    import ray

    space = {
        "name": "conditional",
        "parameters": {
            "freeze_depth": {"type": "depth", "blocks": [0, 1]},
            "optimizer": {"type": "categorical", "choices": ["sgd", "adamw"]},
            "momentum": {"type": "float", "low": 0.8, "high": 0.95, "when": {"optimizer": "sgd"}},
        },
        "fixed": {"batch_size": 16, "base_lr": 0.01},
        "budget": {"trials": 3, "max_epochs": 1, "sampler": {"type": "random"}},
    }
    (tmp_path / "conditional.yaml").write_text(yaml.safe_dump(space, sort_keys=False))
    request = SearchRequest(
        dataset=DATA,
        space=str(tmp_path / "conditional.yaml"),  # sampled define-by-run through OptunaSearch
        input_size=32,
        storage=f"sqlite:///{tmp_path}/cond.db",
        study_name="cond",
        device="cpu",
        threads=1,
        backend="ray",
        recommend=False,
    )
    study = run_search(request, seeds=[])
    assert not ray.is_initialized(), "the Ray instance the search started is shut down"
    trials = study.get_trials(states=FINISHED)
    assert len(trials) == 3
    for t in trials:
        assert ("momentum" in t.params) == (t.params["optimizer"] == "sgd"), t.params
    assert (tmp_path / "ray_results" / "cond" / ".autotransfer-done").exists()


@pytest.mark.slow
def test_multi_objective_study_records_accuracy_and_cost(tmp_path: Path) -> None:
    space = {
        "name": "mo",
        "parameters": {"freeze_depth": {"type": "depth", "blocks": [0, 1]}},
        "fixed": {"batch_size": 16},
        "budget": {
            "trials": 2,
            "max_epochs": 2,
            "pruner": {"type": "none"},
            "sampler": {"type": "random"},
            "objective": "accuracy_and_cost",
        },
    }
    (tmp_path / "mo.yaml").write_text(yaml.safe_dump(space))
    request = SearchRequest(
        dataset=DATA,
        space=str(tmp_path / "mo.yaml"),
        input_size=32,
        storage=f"sqlite:///{tmp_path}/mo.db",
        study_name="mo",
        device="cpu",
        threads=1,
        backend="ray",
        recommend=False,
    )
    study = run_search(request, seeds=[])
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 2
    for t in trials:  # accuracy up, training seconds down; no intermediate values (as Optuna)
        info = read_trial(t)
        assert t.values[0] >= (info.final_val_accuracy or 0)  # the best epoch's accuracy
        assert t.values[1] > 0 and abs(t.values[1] - (info.train_time_s or 0)) < 0.01
        assert t.intermediate_values == {} and info.epochs_run == 2


@pytest.mark.slow
def test_cancelling_stops_the_running_trials_as_failed_and_a_rerun_completes(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/cancel.db"
    request = SearchRequest(
        dataset=DATA,
        space="small_data",
        stop="trials",
        trials=3,
        max_epochs=3,
        input_size=32,
        storage=url,
        study_name="cancel",
        device="cpu",
        threads=1,
        backend="ray",
        recommend=False,
        max_concurrent_trials=1,
    )

    def cancelled() -> bool:  # the service's cancel: once a trial has an epoch recorded
        return any(_counts(url, "cancel").get(s) for s in FINISHED) or any(
            t.intermediate_values
            for t in optuna.load_study(study_name="cancel", storage=make_storage(url)).get_trials(
                deepcopy=False
            )
        )

    study = run_search(request, seeds=[], should_stop=cancelled)
    trials = study.get_trials()
    assert len(trials) == 1 and trials[0].state == TrialState.FAIL, trials
    assert read_trial(trials[0]).ended == Outcome.CANCELLED
    again = run_search(request, seeds=[])  # the cancelled trial is rerun, as on Optuna
    assert len(again.get_trials(states=FINISHED)) == 3


def _counts(url: str, name: str) -> dict[TrialState, int]:
    try:
        study = optuna.load_study(study_name=name, storage=make_storage(url))
    except KeyError:
        return {}
    counts: dict[TrialState, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state] = counts.get(t.state, 0) + 1
    return counts


@pytest.mark.slow
def test_interrupted_ray_search_resumes_with_tuner_restore(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/resume.db"
    # the packaged space without its pruner: which trial the decision pruner stops depends on
    # the accuracies, and this test is about every trial finishing after the resume
    spec = load_spec("small_data").model_dump(mode="json")
    spec["budget"]["pruner"] = {"type": "none"}
    space = tmp_path / "unpruned.yaml"
    space.write_text(yaml.safe_dump(spec))
    args = _cli(
        *["search", "--dataset", DATA, "--space", str(space), "--trials", "3"],
        *["--stop", "trials"],
        *["--max-epochs", "3", "--input-size", "32", "--device", "cpu", "--threads", "1"],
        *["--storage", url, "--study-name", "r", "--backend", "ray", "--no-recommend"],
        *["--max-concurrent-trials", "1"],
    )
    env = {**os.environ, **RAY_ENV}
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # interrupt once a trial finished and another runs
        c = _counts(url, "r")
        if c.get(TrialState.COMPLETE, 0) + c.get(TrialState.PRUNED, 0) >= 1 and c.get(
            TrialState.RUNNING
        ):
            break
        assert proc.poll() is None, "the search ended before it could be interrupted"
        time.sleep(0.3)
    proc.send_signal(signal.SIGINT)  # Ctrl+C: Tune saves the experiment and stops
    assert proc.wait(timeout=120) != 0
    interrupted = _counts(url, "r")
    assert interrupted.get(TrialState.RUNNING) == 1, interrupted

    done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-4000:]
    study = optuna.load_study(study_name="r", storage=make_storage(url))
    trials = study.get_trials()
    # the interrupted trial was resumed, not replaced: three trials, all finished
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3, [t.state for t in trials]
    assert all(list(t.intermediate_values) == [1, 2, 3] for t in trials)
    assert len({read_trial(t).ray_trial_id for t in trials}) == 3
    experiments = sorted(p.name for p in (tmp_path / "ray_results").iterdir())
    assert experiments == ["r"], "Tuner.restore continued the same experiment"
    assert (tmp_path / "ray_results" / "r" / ".autotransfer-done").exists()


@pytest.mark.slow
def test_an_http_job_with_an_inline_spec_runs_on_nodes_that_cannot_see_its_files(
    tmp_path: Path,
) -> None:
    """The job worker used to write an inline spec to a temporary file and hand trials its
    path; on other machines (the compose deployment's Ray containers) every trial failed.
    Here the nodes cannot see the job worker's TMPDIR at all."""
    import httpx
    from service_helpers import serve, service_env, wait_for

    job_tmp = tmp_path / "job-tmp"
    job_tmp.mkdir()
    (job_tmp / "marker").write_text("only the job worker sees this")
    space = {
        "name": "inline",
        "parameters": {
            "freeze_depth": {"type": "depth", "blocks": [0, 1]},
            "base_lr": {"type": "float", "low": 0.01, "high": 0.1, "log": True},
        },
        "fixed": {"optimizer": "sgd", "momentum": 0.9, "batch_size": 16},
        "budget": {"trials": 2, "max_epochs": 2, "pruner": {"type": "none"}},
    }
    with _cluster(hide=job_tmp) as address:
        marker = str(job_tmp / "marker")
        probe = (
            f"import os, ray; ray.init(address={address!r}, log_to_driver=False); "
            "f = ray.remote(num_cpus=1)(lambda p: os.path.exists(p)); "
            f"print('visible' if ray.get(f.remote({marker!r})) else 'hidden')"
        )
        seen = subprocess.run(
            [sys.executable, "-c", probe],
            env={**os.environ, **RAY_ENV},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert seen.stdout.strip().endswith("hidden"), (seen.stdout, seen.stderr[-2000:])
        env = service_env(f"sqlite:///{tmp_path}/jobs.db", dev="1", threads="1")
        env.update({**RAY_ENV, "RAY_ADDRESS": address, "TMPDIR": str(job_tmp)})
        with serve(env, tmp_path / "serve.log") as base:
            body = {
                "dataset": DATA,
                "spec": space,
                "backend": "ray",
                "input_size": 32,
                "recommend": False,
                "study_name": "inline-ray",
            }
            accepted = httpx.post(f"{base}/v1/studies", json=body, timeout=30)
            assert accepted.status_code == 202, accepted.text
            location = f"{base}{accepted.json()['location']}"

            def ended() -> dict[str, object] | None:
                job = httpx.get(location, timeout=10).json()
                return job if job["state"] in ("succeeded", "failed", "cancelled") else None

            job = wait_for(ended, 420, "the Ray job to end", every=2)
            log = (tmp_path / "serve.log").read_text(errors="replace")[-4000:]
            assert job["state"] == "succeeded", (job, log)
            assert job["progress"]["finished"] == 2 and job["progress"]["failed"] == 0, job
    study = optuna.load_study(
        study_name="inline-ray", storage=make_storage(f"sqlite:///{tmp_path}/jobs.db")
    )
    nodes = {read_trial(t).ray_node for t in study.get_trials(states=FINISHED)}
    assert len(nodes) == 2 and None not in nodes, "the trials ran on the cluster's two nodes"
