"""One contract for both search backends (Optuna and Ray Tune), run on the same real search.

The space has a condition (``layer_decay`` only at depth 1), which the engine samples
define-by-run on both backends (Ray asks it through ``EngineSearcher``). The scenario makes
every outcome certain rather than likely: the seeds run first and, in this order, are a good
configuration, one that raises (label smoothing 1.0 is not a valid setting), and two with a
hopeless learning rate that stay at chance after the first epoch, so the pruner (successive
halving on Optuna, the ASHA scheduler it compiles to on Ray) must stop them there. One trial
at a time keeps the order fixed on Ray as well.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from autotransfer import record
from autotransfer.record import read_study, read_trial
from autotransfer.search import BACKENDS, SearchRequest, Seed, run_search
from autotransfer.storage import open_storage as make_storage

DATA = "synthetic:classes=3,per_class=24,size=16,difficulty=0.2,shift=0.0"
SPACE = {
    "name": "contract",
    "parameters": {
        "freeze_depth": {"type": "depth", "blocks": [0, 1]},
        "base_lr": {"type": "float", "low": 1.0e-7, "high": 0.2, "log": True},
        "label_smoothing": {"type": "categorical", "choices": [0.0, 1.0]},
        # a condition: Ray samples this spec define-by-run, with Optuna's own distributions
        "layer_decay": {"type": "float", "low": 0.5, "high": 1.0, "when": {"freeze_depth": 1}},
    },
    "fixed": {"optimizer": "sgd", "momentum": 0.9, "batch_size": 16},
    "budget": {
        "trials": 4,
        "max_epochs": 2,
        "min_epochs": 1,
        "pruner": {"type": "successive_halving", "reduction_factor": 3},
        "sampler": {"type": "random"},
        "seed": 0,
    },
}
GOOD = {"freeze_depth": 1, "base_lr": 0.1, "label_smoothing": 0.0}
RAISES = {"freeze_depth": 0, "base_lr": 0.1, "label_smoothing": 1.0}
HOPELESS = {"freeze_depth": 0, "base_lr": 1.0e-7, "label_smoothing": 0.0}
SEEDS = [Seed(GOOD), Seed(RAISES), Seed(HOPELESS), Seed({**HOPELESS, "freeze_depth": 1})]

# what a reviewer finds on every trial, whichever backend ran it (test_record.py pins names)
TRIAL_ATTRS = set(record.TRIAL_ON_EPOCH) | set(record.TRIAL_ON_END)
COMPLETE_ATTRS = TRIAL_ATTRS | set(record.TRIAL_ON_COMPLETE)
RAY_ONLY = set(record.TRIAL_ON_RAY)


# where each backend's trials keep frozen-prefix features (see the study fixture)
CACHE_DIRS: dict[str, Path] = {}


@pytest.fixture(scope="module")
def ray_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One local Ray for the module (starting Ray takes seconds); the backend reuses it."""
    import ray

    # no token or feature cache written into the home folder, no usage report; Ray's
    # workers inherit this environment, and each node's cache is its default folder
    CACHE_DIRS["ray"] = tmp_path_factory.mktemp("node-cache")
    env = {
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "AUTOTRANSFER_CACHE_DIR": str(CACHE_DIRS["ray"]),
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def studies() -> dict[str, optuna.Study]:
    """The same search on each backend, run once for the whole contract."""
    return {}


@pytest.fixture(params=sorted(BACKENDS))
def study(
    request: pytest.FixtureRequest,
    studies: dict[str, optuna.Study],
    tmp_path_factory: pytest.TempPathFactory,
) -> optuna.Study:
    backend = request.param
    if backend not in studies:
        if backend == "ray":
            request.getfixturevalue("ray_session")
        root = tmp_path_factory.mktemp(backend)
        space = root / "contract.yaml"
        space.write_text(yaml.safe_dump(SPACE, sort_keys=False))
        search = SearchRequest(
            dataset=DATA,
            space=str(space),
            input_size=32,
            storage=f"sqlite:///{root}/study.db",
            study_name=f"contract-{backend}",
            device="cpu",
            threads=1,
            backend=backend,
            max_concurrent_trials=1,
        )
        run_search(search, seeds=SEEDS)
        CACHE_DIRS.setdefault(backend, root / "study-features")  # beside the SQLite file
        # read back from the storage, as the CLI, the API and optuna-dashboard do
        studies[backend] = optuna.load_study(
            study_name=f"contract-{backend}", storage=make_storage(search.storage)
        )
    return studies[backend]


def test_seeds_run_first_in_order_and_are_marked(study: optuna.Study) -> None:
    trials = study.get_trials()
    for trial, seed in zip(trials, SEEDS, strict=False):
        assert seed.params.items() <= trial.params.items(), (trial.params, seed.params)
    assert [read_trial(t).source for t in trials[:4]] == ["recommender"] * 4
    assert all(read_trial(t).source == "sampler" for t in trials[4:])
    assert read_study(study).seeds_enqueued == 4


def test_the_requested_trials_finish_and_a_failing_trial_does_not_stop_the_study(
    study: optuna.Study,
) -> None:
    trials = study.get_trials()
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 4
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    failed = trials[1]
    assert failed.state == TrialState.FAIL
    error = read_trial(failed).error or ""
    assert error.startswith("ValidationError")
    assert "label_smoothing" in error
    assert "Traceback" in (read_trial(failed).traceback or "")
    assert len(trials) > 4, "a trial ran after the failure"


def test_hopeless_trials_are_stopped_after_the_first_epoch(study: optuna.Study) -> None:
    good, hopeless = study.trials[0], study.trials[2:4]
    assert good.state == TrialState.COMPLETE and read_trial(good).epochs_run == 2
    assert good.intermediate_values[1] > 0.6, "the scenario needs a clearly good first trial"
    for trial in hopeless:
        assert trial.state == TrialState.PRUNED, trial.number
        assert read_trial(trial).epochs_run == 1
        assert list(trial.intermediate_values) == [1]
        assert trial.value == trial.intermediate_values[1]


def test_records_look_the_same(study: optuna.Study) -> None:
    for trial in study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED)):
        keys = set(trial.user_attrs) - RAY_ONLY
        expected = COMPLETE_ATTRS if trial.state == TrialState.COMPLETE else TRIAL_ATTRS
        assert keys == expected, (trial.number, keys ^ expected)
        info = read_trial(trial)
        assert info.num_blocks == 17 and info.input_size == 32
        assert info.freeze_depth == trial.params["freeze_depth"]
        assert list(trial.intermediate_values) == list(range(1, (info.epochs_run or 0) + 1))
        if trial.state == TrialState.COMPLETE:
            assert trial.value == max(trial.intermediate_values.values())
            assert info.final_val_accuracy == trial.intermediate_values[2]
            best = info.best_epoch or 0
            assert trial.intermediate_values[best] == trial.value
    for trial in study.trials:
        assert ("layer_decay" in trial.params) == (trial.params["freeze_depth"] == 1)
    fingerprints = {read_trial(t).dataset_fingerprint for t in study.trials}
    assert fingerprints - {None} == {read_study(study).dataset_fingerprint}
    header = read_study(study)
    for value in (header.backbone, header.dataset_fingerprint, header.num_blocks, header.space):
        assert value is not None, header
    assert header.spec is not None


def test_frozen_features_are_cached(study: optuna.Study) -> None:
    backend = "ray" if any(read_trial(t).ray_node for t in study.trials) else "optuna"
    entries = [p for p in CACHE_DIRS[backend].rglob("*") if p.is_file()]
    assert entries, f"no cached features in {CACHE_DIRS[backend]}"


# --- stopping: the same self-stopping search on every backend -------------------------------

SETTLING = {
    **SPACE,
    "name": "settling",
    "budget": {
        "trials": 12,  # a cap the search never reaches: it stops once settled
        "max_epochs": 2,
        "min_epochs": 1,
        "pruner": {"type": "decision"},
        "stop": "settled",
        "patience": 2,
        "sampler": {"type": "random"},
        "seed": 0,
    },
}


@pytest.fixture(scope="module")
def settled_studies() -> dict[str, optuna.Study]:
    return {}


@pytest.fixture(params=sorted(BACKENDS))
def settled_study(
    request: pytest.FixtureRequest,
    settled_studies: dict[str, optuna.Study],
    tmp_path_factory: pytest.TempPathFactory,
) -> optuna.Study:
    """A good seed, then two hopeless ones that cannot change the decision: the decision
    pruner stops each after its first epoch and the search then stops by itself."""
    backend = request.param
    if backend not in settled_studies:
        if backend == "ray":
            request.getfixturevalue("ray_session")
        root = tmp_path_factory.mktemp(f"settle-{backend}")
        space = root / "settling.yaml"
        space.write_text(yaml.safe_dump(SETTLING, sort_keys=False))
        search = SearchRequest(
            dataset=DATA,
            space=str(space),
            input_size=32,
            storage=f"sqlite:///{root}/study.db",
            study_name=f"settle-{backend}",
            device="cpu",
            threads=1,
            backend=backend,
            max_concurrent_trials=1,
        )
        run_search(
            search, seeds=[Seed(GOOD), Seed(HOPELESS), Seed({**HOPELESS, "freeze_depth": 1})]
        )
        settled_studies[backend] = optuna.load_study(
            study_name=f"settle-{backend}", storage=make_storage(search.storage)
        )
    return settled_studies[backend]


def test_the_search_stops_by_itself_once_its_decision_is_settled(
    settled_study: optuna.Study,
) -> None:
    trials = settled_study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.PRUNED]
    assert [read_trial(t).epochs_run for t in trials] == [2, 1, 1]
    info = read_study(settled_study)
    assert info.stop == record.Stop.SETTLED, info.stop_reason
    assert "the chosen configuration (trial #0)" in (info.stop_reason or "")
    assert "over the last 2 of 3 finished trials" in (info.stop_reason or "")


# --- the procedure as the policy ---------------------------------------------------------------

CLIMBING = {
    "name": "climbing",
    "parameters": {
        "freeze_depth": {"type": "depth", "fraction": [0.0, 0.25]},
        "base_lr": {"type": "float", "low": 0.01, "high": 0.1, "log": True},
    },
    "fixed": {"optimizer": "sgd", "momentum": 0.9, "batch_size": 16},
    "budget": {
        "trials": 12,
        "max_epochs": 1,
        "min_epochs": 1,
        "pruner": {"type": "decision"},
        "policy": "procedure",
        "stop": "settled",
        "sampler": {"type": "random"},
        "seed": 0,
    },
}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_the_procedure_runs_the_same_way_on_both_backends(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "ray":
        request.getfixturevalue("ray_session")
    space = tmp_path / "climbing.yaml"
    space.write_text(yaml.safe_dump(CLIMBING, sort_keys=False))
    search = SearchRequest(
        dataset=DATA,
        space=str(space),
        input_size=32,
        storage=f"sqlite:///{tmp_path}/study.db",
        study_name=f"climb-{backend}",
        device="cpu",
        threads=1,
        backend=backend,
        max_concurrent_trials=1,
        start="freeze_depth=0,base_lr=0.03",
    )
    study = run_search(search)
    trials = study.get_trials()
    infos = [read_trial(t) for t in trials]
    # the user's start is the baseline; then the climb, then refinement; no point twice
    assert [i.step for i in infos[:2]] == ["start", "climb"], [i.step for i in infos]
    assert infos[0].source == record.USER
    assert all(i.source == record.PROCEDURE for i in infos[1:])
    assert {i.step for i in infos} <= {"start", "climb", "refine"}
    points = [(t.params["freeze_depth"], round(t.params["base_lr"], 6)) for t in trials]
    assert len(set(points)) == len(points), points
    assert trials[1].params["freeze_depth"] == 3  # the ladder's first rung on 17 blocks
    info = read_study(study)
    assert info.stop == record.Stop.SETTLED and "the procedure is done" in str(info.stop_reason)
    assert info.decision is not None


# --- a space that searches the backbone -------------------------------------------------------

ZOO_BLOCKS = {"efficientnet_lite0": 17, "efficientnet_lite1": 22}
ZOO_SPACE = {
    "name": "zoo-contract",
    "parameters": {
        "backbone": {
            "type": "categorical",
            "choices": ["efficientnet_lite0", "efficientnet_lite1"],
        },
        "freeze_depth": {"type": "depth", "fraction": [0.0, 1.0]},
        "base_lr": {"type": "float", "low": 0.01, "high": 0.1, "log": True},
    },
    "fixed": {"optimizer": "sgd", "momentum": 0.9, "batch_size": 16},
    "budget": {"trials": 3, "max_epochs": 1, "sampler": {"type": "random"}, "seed": 0},
}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_space_that_searches_the_backbone_runs_on_both_backends(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Each trial trains the backbone it drew, with a depth of that backbone's own blocks;
    the linear probes of the two backbones are two cache entries, never one."""
    if backend == "ray":
        request.getfixturevalue("ray_session")
    space = tmp_path / "zoo.yaml"
    space.write_text(yaml.safe_dump(ZOO_SPACE, sort_keys=False))
    search = SearchRequest(
        dataset=DATA,
        space=str(space),
        input_size=32,
        storage=f"sqlite:///{tmp_path}/study.db",
        study_name=f"zoo-{backend}",
        device="cpu",
        threads=1,
        backend=backend,
        max_concurrent_trials=1,
        cache_dir=str(tmp_path / "features"),
    )
    probe = {"freeze_depth": 0, "base_lr": 0.05}
    seeds = [Seed({"backbone": name, **probe}) for name in ZOO_BLOCKS]
    study = run_search(search, seeds=seeds)
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 3
    assert [t.params["backbone"] for t in trials[:2]] == list(ZOO_BLOCKS)
    for t in trials:
        info = read_trial(t)
        name = t.params["backbone"]
        assert info.backbone == name and info.num_blocks == ZOO_BLOCKS[name]
        assert 0 <= t.params["freeze_depth"] <= ZOO_BLOCKS[name]
        assert info.inference is not None and info.inference["macs"] > 0
    costs = {t.params["backbone"]: read_trial(t).inference["macs"] for t in trials}  # type: ignore[index]
    assert costs["efficientnet_lite0"] < costs["efficientnet_lite1"]
    keys = [
        yaml.safe_load(p.read_text())["key"] for p in (tmp_path / "features").glob("*/meta.json")
    ]
    probes = sorted(k["backbone"] for k in keys if k["cut"] == ZOO_BLOCKS[k["backbone"]])
    assert probes == sorted(ZOO_BLOCKS), "one head-only feature set per backbone"


# A tolerance no reader uses by default: every configuration is "as good", so the engine's
# choice is the cheapest trial (the frozen, hopeless one), where a reader recomputing at the
# default half point would pick the good, fine-tuned one instead.
WIDE = {
    **SPACE,
    "name": "wide_tolerance",
    "parameters": {k: v for k, v in SPACE["parameters"].items() if k != "layer_decay"},
    "budget": {
        "trials": 2,
        "max_epochs": 1,
        "min_epochs": 1,
        "pruner": {"type": "none"},
        "sampler": {"type": "random"},
        "tolerance": 1.0,
        "seed": 0,
    },
}


@pytest.fixture(scope="module")
def decided(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """The wide-tolerance search on each backend, in one SQLite file the API serves too."""
    from typer.testing import CliRunner

    from autotransfer.cli import app

    request.getfixturevalue("ray_session")
    root = tmp_path_factory.mktemp("decided")
    space = root / "wide.yaml"
    space.write_text(yaml.safe_dump(WIDE, sort_keys=False))
    for backend in sorted(BACKENDS):
        options = SearchRequest(
            dataset=DATA,
            space=str(space),
            input_size=32,
            storage=f"sqlite:///{root}/study.db",
            study_name=f"decided-{backend}",
            device="cpu",
            threads=1,
            backend=backend,
            max_concurrent_trials=1,
        )
        run_search(options, seeds=[Seed(GOOD), Seed(HOPELESS)])
        # the same command again resumes the finished study and exports its decision
        args = ["search", "--dataset", DATA, "--space", str(space), "--input-size", "32"]
        args += ["--storage", str(options.storage), "--study-name", f"decided-{backend}"]
        args += ["--device", "cpu", "--threads", "1", "--backend", backend]
        args += ["--export", str(root / backend), "--plots", str(root), "--json"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
    return root


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_every_reader_gets_the_engines_decision_at_the_spaces_tolerance(
    decided: Path, backend: str, tmp_path: Path
) -> None:
    import json

    import httpx
    from service_helpers import KEY, serve, service_env
    from typer.testing import CliRunner

    from autotransfer.cli import app
    from service import jobs
    from service.db import get_sessionmaker

    url = f"sqlite:///{decided}/study.db"
    name = f"decided-{backend}"
    study = optuna.load_study(study_name=name, storage=make_storage(url))
    stored = read_study(study).decision
    assert stored is not None and stored["tolerance"] == 1.0
    hopeless = next(t.number for t in study.trials if t.params["base_lr"] < 1e-6)
    good = next(t.number for t in study.trials if t.params["base_lr"] > 0.05)
    # the cheapest trial is chosen at this space's tolerance, the good one is the best
    assert (stored["chosen_trial"], stored["best_trial"]) == (hopeless, good), stored
    assert read_study(study).model["trial"] == hopeless  # the kept model
    exported = yaml.safe_load((decided / backend / "best_config.yaml").read_text())
    assert exported["trial"] == hopeless
    shown = CliRunner().invoke(app, ["studies", "show", name, "--storage", url, "--json"])
    assert shown.exit_code == 0, shown.output
    decision = json.loads(shown.stdout)["decision"]
    assert decision["chosen_trial"] == hopeless and decision["tolerance"] == 1.0
    with get_sessionmaker(url)() as session:
        job = jobs.create_job(session, {"dataset": DATA}, name)
    env = service_env(url, api_keys=KEY, warm_catalog="false", dashboard="false")
    with serve(env, tmp_path / "serve.log", "--no-worker") as base:
        auth = {"Authorization": f"Bearer {KEY}"}
        body = httpx.get(f"{base}/v1/studies/{job.id}", headers=auth, timeout=30).json()
        config = httpx.get(f"{base}/v1/studies/{job.id}/config", headers=auth, timeout=30)
    assert body["chosen_trial"] == hopeless and body["model"]["trial"] == hopeless, body
    assert config.json()["trial"] == hopeless
