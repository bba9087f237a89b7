"""The search plan: built once by ``prepare``, shipped as JSON, the one builder of a trial's
configuration; worker processes receive it and never prepare the search again."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from pathlib import Path

import optuna

from autotransfer import record
from autotransfer.search import SearchPlan, SearchRequest, prepare
from autotransfer.storage import open_storage

DATA = "synthetic:classes=3,per_class=16,size=16,difficulty=0.2,shift=0.0"

# every process of the search (worker processes too) logs each network it builds through
# autotransfer.backbones.create_backbone, the name every caller outside that package uses
COUNTING = """
import os

import autotransfer.backbones as backbones

_build = backbones.create_backbone


def _counted(name, *args, **kwargs):
    with open(os.environ["AUTOTRANSFER_TEST_BUILDS"], "a") as log:
        log.write(f"{os.getpid()} {name}\\n")
    return _build(name, *args, **kwargs)


backbones.create_backbone = _counted
"""


def test_the_plan_round_trips_as_json_and_builds_every_trial_config() -> None:
    request = SearchRequest(dataset=DATA, space="small_data", input_size=32, device="cpu")
    p = prepare(request)
    again = SearchPlan.model_validate_json(p.plan.model_dump_json())
    assert again == p.plan
    params = {"freeze_depth": 3, "base_lr": 0.02, "lp_ft_epochs": 1}
    config = again.trial_config(params)
    assert config == p.trial_config(params)
    assert (config.backbone, config.input_size, config.epochs) == ("efficientnet_lite0", 32, 8)
    assert config.batch_size == 32 and config.metric == "accuracy"  # the space's fixed values
    assert again.load_dataset().fingerprint == p.dataset.fingerprint


def test_worker_processes_get_the_plan_and_build_one_network_per_trial(tmp_path: Path) -> None:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(COUNTING)
    builds = tmp_path / "builds.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]),
        "AUTOTRANSFER_TEST_BUILDS": str(builds),
    }
    url = f"sqlite:///{tmp_path}/plan.db"
    args = ["search", "--dataset", DATA, "--space", "small_data", "--trials", "4"]
    args += ["--stop", "trials", "--max-epochs", "1", "--input-size", "32", "--threads", "1"]
    args += ["--workers", "2", "--no-recommend", "--device", "cpu", "--storage", url]
    args += ["--study-name", "plan", "--plots", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-m", "autotransfer", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    study = optuna.load_study(study_name="plan", storage=open_storage(url))
    ran = collections.Counter(
        int(str(record.read_trial(t).worker).rsplit(":", 1)[1]) for t in study.trials
    )
    built = collections.Counter(int(line.split()[0]) for line in builds.read_text().splitlines())
    workers = [pid for pid in built if pid != done_pid(built, ran)]
    assert len(ran) == 2 and sum(ran.values()) == 4, ran  # both processes trained
    # a worker process builds the network of each trial it runs, and nothing more: it did
    # not prepare the search again (which builds every backbone once to check its weights)
    assert workers and all(built[pid] == ran[pid] for pid in workers), (built, ran)


def done_pid(built: collections.Counter[int], ran: collections.Counter[int]) -> int:
    """The main process: the one that built networks before any trial (``prepare``)."""
    extra = [pid for pid in built if built[pid] > ran.get(pid, 0)]
    assert len(extra) == 1, (built, ran)
    return extra[0]
