"""The Ray executor: the engine's trials run on a Ray cluster, stopped early by its scheduler.

A ``Tuner`` drives the trials; its searcher is a thin adapter over the engine's session
(``EngineSearcher``), so a Ray study is asked, recorded and reviewed exactly like an Optuna
one: ``autotransfer studies``, the HTTP API and optuna-dashboard read the same records. The
decision pruner runs in the engine through its own Tune scheduler (``EngineScheduler``);
any other pruner of the spec becomes Tune's own scheduler (``autotransfer.space.ray_scheduler``:
ASHA, the median stopping rule), which sees the whole cluster's trials. Optuna itself never
prunes here.

Each study has a Tune experiment folder beside its storage (``ray_results/<study>`` next to
a SQLite or journal file, else in the working folder). Running the same search again
restores an interrupted experiment with ``Tuner.restore``; a finished one is kept, and the
trials still missing run in a new experiment folder (``<study>-2``, …).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import ray.tune  # noqa: F401  (the 'ray' extra: missing, the backend's lookup says so)

from autotransfer.errors import UserInputError
from autotransfer.search._prepared import SearchPlan
from autotransfer.search._request import SearchRequest
from autotransfer.search._session import SearchSession
from autotransfer.space import ray_scheduler
from autotransfer.storage import StorageURL

log = logging.getLogger(__name__)

DONE_MARKER = ".autotransfer-done"
_ADDRESS = re.compile(r"^(auto|ray://[^\s/:]+:\d+|[^\s/:]+:\d+)$")


def experiments_root(storage: StorageURL) -> Path:
    """Where a study's Tune experiments live: beside a SQLite/journal file, else ``./``."""
    if storage.path is not None:
        return storage.path.resolve().parent / "ray_results"
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


def _fail_orphans(session: SearchSession, known: set[str]) -> None:
    """Fail the study's running Ray trials that the experiment about to run does not hold.

    A driver killed hard (SIGKILL, lost machine) leaves the trials it asked after Tune's last
    experiment snapshot RUNNING in the storage, where nothing would ever finish them; like a
    stale heartbeat on the Optuna backend, they become FAIL and their slots are freed. One
    Ray driver per study at a time: another driver's live trials would look orphaned too.
    """
    for number, ray_id in session.ray_trial_ids().items():
        if ray_id not in known:
            session.orphaned(session.ticket(number), "orphaned: its Ray driver stopped without it")


def _worker_plan(plan: SearchPlan) -> str:
    """The plan each trial gets, as JSON, with a local dataset path made absolute (Tune runs
    trials in their own folders)."""
    request = plan.request
    dataset = request.dataset
    if dataset.path is not None and dataset.path.exists():
        dataset = dataset.with_path(dataset.path.resolve())
    moved = request.model_copy(update={"dataset": dataset})
    return plan.model_copy(update={"request": moved}).model_dump_json()


class RayExecutor:
    """Runs (or resumes) the study on Ray Tune until the engine hands out no more trials."""

    def run(self, session: SearchSession, should_stop: Any) -> None:
        from ray import tune

        from autotransfer.search._ray_searcher import attached

        p = session.prepared
        request = p.request
        if request.workers != 1:
            raise UserInputError(
                f"workers={request.workers} is for the Optuna backend; on Ray, trials run on "
                f"the cluster's workers: set max_concurrent_trials (--max-concurrent-trials)."
            )
        missing = p.spec.budget.trials - session.finished()
        if missing <= 0:
            return
        root = experiments_root(request.storage)
        name, resume = _experiment(root, p.study_name)
        session.record_experiment(root / name)
        cpus = float(request.threads or 1)
        started = _init_ray(request.ray_address)
        try:
            _check_resources(cpus, request.gpus_per_trial)
            trainable = tune.with_resources(
                tune.with_parameters(_trainable(), plan_json=_worker_plan(p.plan), cpus=cpus),
                {"cpu": cpus, "gpu": request.gpus_per_trial},
            )
            _fail_orphans(session, _known_trials(root / name) if resume else set())
            if resume:
                log.info("resuming Tune experiment %s", root / name)
                tuner = tune.Tuner.restore(str(root / name), trainable, resume_unfinished=True)
            else:
                tuner = _new_tuner(session, trainable, root, name, missing)
            with attached(session):
                tuner.fit()
        finally:
            if started:
                import ray

                ray.shutdown()
        if session.ray_trial_ids():  # Tune stopped on Ctrl+C
            raise KeyboardInterrupt(
                f"the Ray run was interrupted; run the same search again to resume {root / name}"
            )
        (root / name / DONE_MARKER).touch()


def _trainable() -> Any:
    from autotransfer.search._ray_trainable import run_trial

    return run_trial


def _new_tuner(session: SearchSession, trainable: Any, root: Path, name: str, missing: int) -> Any:
    from ray import tune

    from autotransfer.search._ray_searcher import CancelStopper, EngineScheduler, EngineSearcher
    from autotransfer.search._ray_trainable import METRIC

    spec, request = session.spec, session.prepared.request
    name_ = session.study.study_name
    # the decision pruner needs the engine's decision; the others are Tune's own schedulers
    engine_prunes = spec.budget.pruner.type == "decision" and not spec.budget.multi_objective
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=EngineSearcher(name_),
            scheduler=(
                EngineScheduler(name_) if engine_prunes else ray_scheduler(spec, metric=METRIC)
            ),
            # a cap, not the count: the engine ends the run once enough trials finished;
            # failed trials are replaced up to this many
            num_samples=2 * missing + 2,
            max_concurrent_trials=request.max_concurrent_trials or _trial_slots(request),
            reuse_actors=True,  # a worker keeps torch imported and the dataset loaded
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(root),
            stop=CancelStopper(name_),
            failure_config=tune.FailureConfig(max_failures=0),
            verbose=0,
        ),
    )
