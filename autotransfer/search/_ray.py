"""The Ray Tune backend: the same study, its trials run on a Ray cluster and stopped by ASHA.

A ``Tuner`` drives the trials; its searcher is Ray's ``OptunaSearch`` on the study's own
storage and name (see ``StudySearcher``), so a Ray study is reviewed exactly like an Optuna
one: ``autotransfer studies``, the HTTP API and optuna-dashboard read the same records. The
spec's pruner becomes the Tune scheduler (``autotransfer.spec.ray_scheduler``); Optuna itself
never prunes here.

Each study has a Tune experiment folder beside its storage (``ray_results/<study>`` next to
a SQLite or journal file, else in the working folder). Running the same search again
restores an interrupted experiment with ``Tuner.restore``; a finished one is kept, and the
trials still missing run in a new experiment folder (``<study>-2``, …).
"""

from __future__ import annotations

import functools
import logging
import os
import re
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from autotransfer.errors import UserInputError
from autotransfer.search._prepared import PreparedSearch, Seed
from autotransfer.search._ray_searcher import RAY_TRIAL_ATTR
from autotransfer.search._request import SearchRequest
from autotransfer.search._run import open_study
from autotransfer.search._storage import is_journal, journal_path, make_storage
from autotransfer.spec import (
    SearchSpec,
    fit_to_space,
    optuna_sampler,
    ray_scheduler,
    ray_search_space,
    suggest,
)

log = logging.getLogger(__name__)

DONE_MARKER = ".autotransfer-done"
_ADDRESS = re.compile(r"^(auto|ray://[^\s/:]+:\d+|[^\s/:]+:\d+)$")


def experiments_root(storage_url: str) -> Path:
    """Where a study's Tune experiments live: beside a SQLite/journal file, else ``./``."""
    if is_journal(storage_url):
        return journal_path(storage_url).resolve().parent / "ray_results"
    if storage_url.startswith("sqlite:///"):
        database = storage_url.removeprefix("sqlite:///")
        if database and database != ":memory:":
            return Path(database).resolve().parent / "ray_results"
    return Path.cwd().resolve() / "ray_results"


def _experiment(root: Path, study_name: str) -> tuple[str, bool]:
    """The experiment to run: the latest one if it was interrupted (resume), else a new one."""
    from ray import tune

    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", study_name)
    names = [base]
    while (root / names[-1]).exists():
        names.append(f"{base}-{len(names) + 1}")
    if len(names) > 1:
        latest = root / names[-2]
        if tune.Tuner.can_restore(latest) and not (latest / DONE_MARKER).exists():
            return names[-2], True
    return names[-1], False


def _define_by_run(trial: optuna.Trial, *, spec: SearchSpec, num_blocks: int) -> None:
    suggest(trial, spec, num_blocks)  # Ray's OptunaSearch records what is suggested


def _finished(study: optuna.Study) -> int:
    states = (TrialState.COMPLETE, TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


def _init_ray(address: str | None) -> bool:
    """Connect to ``address`` or start a local Ray; True when this call initialised Ray."""
    import ray

    if ray.is_initialized():
        return False
    if address is None:
        # Ray's own variable names a cluster explicitly (deployments set it for the job
        # workers); without it, "local": a new instance even when `ray start` left a cluster
        # to join on this machine
        address = os.environ.get("RAY_ADDRESS") or None
    if address is None:
        ray.init(address="local", include_dashboard=False, log_to_driver=True)
        return True
    if not _ADDRESS.match(address):
        raise UserInputError(
            f"ray_address must be 'auto', 'ray://host:port' or 'host:port', but got "
            f"{address!r}. Use the address `ray start --head` printed."
        )
    try:
        ray.init(address=address, log_to_driver=True)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UserInputError(
            f"Cannot connect to the Ray cluster at {address!r}: {exc}. Check that "
            f"`ray status --address {address.removeprefix('ray://')}` answers; a cluster with "
            f"token authentication (Ray's default) also needs RAY_AUTH_MODE=token here, and "
            f"RAY_AUTH_TOKEN set to the head's ~/.ray/auth_token on another machine."
        ) from exc
    return True


def _trial_slots(request: SearchRequest) -> int:
    """How many trials the cluster holds at once. Tune starts one trial at a time for a
    custom searcher unless told this, and reuses a finished trial's worker rather than
    waiting for a new one on another node: a cluster would run one trial at a time."""
    import ray

    resources = ray.cluster_resources()
    slots = resources.get("CPU", 1.0) // float(request.threads or 1)
    if request.gpus_per_trial:
        slots = min(slots, resources.get("GPU", 0.0) // request.gpus_per_trial)
    return max(1, int(slots))


def _check_resources(cpus: float, gpus: float) -> None:
    """Refuse a trial size no node can hold: Tune would wait for it forever."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    if any(r.get("CPU", 0.0) >= cpus and r.get("GPU", 0.0) >= gpus for r in nodes):
        return
    sizes = ", ".join(f"{r.get('CPU', 0.0):g} CPU/{r.get('GPU', 0.0):g} GPU" for r in nodes)
    raise UserInputError(
        f"No Ray node can hold one trial of {cpus:g} CPUs (threads) and {gpus:g} GPUs "
        f"(gpus_per_trial); the nodes have {sizes or 'nothing'}. Lower --threads or "
        f"--gpus-per-trial, or add a node that large (an autoscaling cluster: start it first)."
    )


def _known_trials(experiment: Path) -> set[str]:
    from ray.tune import ExperimentAnalysis

    return {trial.trial_id for trial in ExperimentAnalysis(str(experiment)).trials}


def _fail_orphans(study: optuna.Study, known: set[str]) -> None:
    """Fail the study's running Ray trials that the experiment about to run does not hold.

    A driver killed hard (SIGKILL, lost machine) leaves the trials it asked after Tune's last
    experiment snapshot RUNNING in the storage, where nothing would ever finish them; like a
    stale heartbeat on the Optuna backend, they become FAIL and their slots are freed. One
    Ray driver per study at a time: another driver's live trials would look orphaned too.
    """
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        ray_id = trial.user_attrs.get(RAY_TRIAL_ATTR)
        if ray_id is not None and ray_id not in known:
            study._storage.set_trial_user_attr(
                trial._trial_id, "error", "orphaned: its Ray driver stopped without it"
            )
            with warnings.catch_warnings():  # Optuna: heartbeats belong to Study.optimize
                warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
                study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
            log.warning("trial %d was left running by a stopped Ray driver: FAIL", trial.number)


def _worker_request(p: PreparedSearch) -> str:
    """The request each trial gets: tiny, and with a local dataset path made absolute
    (Tune runs trials in their own folders)."""
    request = p.request
    dataset = request.dataset
    if Path(dataset).exists():
        dataset = str(Path(dataset).resolve())
    return request.model_copy(update={"dataset": dataset}).model_dump_json()


def run_ray_search(
    p: PreparedSearch,
    *,
    seeds: Sequence[Seed],
    should_stop: Callable[[], bool] | None = None,
) -> optuna.Study:
    """Run (or resume) the study on Ray Tune until it holds the requested finished trials."""
    from ray import tune

    from autotransfer.search import _ray_searcher as searcher_mod
    from autotransfer.search._ray_trainable import run_trial

    request, spec = p.request, p.spec
    if request.workers != 1:
        raise UserInputError(
            f"workers={request.workers} is for the Optuna backend; on Ray, trials run on the "
            f"cluster's workers: set max_concurrent_trials (--max-concurrent-trials) instead."
        )
    study = open_study(p)
    target = spec.budget.trials
    missing = target - _finished(study)
    if missing <= 0:
        return study
    root = experiments_root(request.storage)
    name, resume = _experiment(root, p.study_name)
    study.set_user_attr("ray_experiment", str(root / name))
    cpus = float(request.threads or 1)
    started = _init_ray(request.ray_address)
    deadline = time.monotonic() + spec.budget.timeout_s if spec.budget.timeout_s else None
    searcher_mod._STOP_CHECKS[p.study_name] = lambda: bool(should_stop and should_stop())
    searcher_mod._DEADLINES[p.study_name] = deadline
    try:
        _check_resources(cpus, request.gpus_per_trial)
        trainable = tune.with_resources(
            tune.with_parameters(
                run_trial,
                request_json=_worker_request(p),
                fingerprint=p.dataset.fingerprint,
                num_blocks=p.num_blocks,
                input_size=p.input_size,
                cpus=cpus,
            ),
            {"cpu": cpus, "gpu": request.gpus_per_trial},
        )
        conditional = any(param.when for param in spec.parameters.values())
        param_space = None if conditional else ray_search_space(spec, p.num_blocks)
        _fail_orphans(study, _known_trials(root / name) if resume else set())
        if resume:
            log.info("resuming Tune experiment %s", root / name)
            tuner = tune.Tuner.restore(
                str(root / name), trainable, resume_unfinished=True, param_space=param_space
            )
        else:
            tuner = _new_tuner(p, seeds, trainable, param_space, root, name, missing)
        tuner.fit()
    finally:
        searcher_mod._STOP_CHECKS.pop(p.study_name, None)
        searcher_mod._DEADLINES.pop(p.study_name, None)
        if started:
            import ray

            ray.shutdown()
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if any(RAY_TRIAL_ATTR in t.user_attrs for t in running):  # Tune stopped on Ctrl+C
        raise KeyboardInterrupt(
            f"the Ray run was interrupted; run the same search again to resume {root / name}"
        )
    (root / name / DONE_MARKER).touch()
    if _finished(study) < target:
        log.warning(
            "study %s has %d of %d finished trials (cancelled, or many failed); run again to "
            "add the rest",
            p.study_name,
            _finished(study),
            target,
        )
    return study


def _new_tuner(
    p: PreparedSearch,
    seeds: Sequence[Seed],
    trainable: Any,
    param_space: dict[str, Any] | None,
    root: Path,
    name: str,
    missing: int,
) -> Any:
    from ray import tune

    from autotransfer.search._ray_searcher import CancelStopper, StudySearcher

    spec, request = p.spec, p.request
    searcher = StudySearcher(
        # with conditions, Optuna's own define-by-run sampling; else Tune converts the domains
        functools.partial(_define_by_run, spec=spec, num_blocks=p.num_blocks)
        if param_space is None
        else None,
        study_name=p.study_name,
        # trials are asked and told here, in the driver; workers never open the storage
        storage=make_storage(request.storage, heartbeat_interval=None, grace_period=None),
        sampler=optuna_sampler(spec, seed=spec.budget.seed),
        trials=spec.budget.trials,
        seeds=[(fit_to_space(spec, p.num_blocks, s.params), s.source) for s in seeds],
        multi_objective=spec.budget.objective == "accuracy_and_cost",
    )
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=ray_scheduler(spec),
            # a cap, not the count: the searcher ends the run once enough trials finished;
            # failed trials are replaced up to this many
            num_samples=2 * missing + 2,
            max_concurrent_trials=request.max_concurrent_trials or _trial_slots(request),
            reuse_actors=True,  # a worker keeps torch imported and the dataset loaded
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(root),
            stop=CancelStopper(p.study_name),
            failure_config=tune.FailureConfig(max_failures=0),
            verbose=0,
        ),
    )
