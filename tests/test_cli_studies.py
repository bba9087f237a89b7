"""A real ``autotransfer search`` off a terminal, and the ``studies`` commands on its storage:
progress lines in a log, ``--json`` for machines, ``studies delete``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import optuna
import pytest
from typer.testing import CliRunner

from autotransfer.cli import app

TINY_DATA = "synthetic:classes=3,per_class=24,size=16,difficulty=0.2,shift=0.0"
runner = CliRunner()


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One small search with ``--json``: 2 trials of 1 epoch, recommender off."""
    folder = tmp_path_factory.mktemp("search")
    url = f"sqlite:///{folder}/cli.db"
    args = ["search", "--dataset", TINY_DATA, "--space", "small_data", "--trials", "2"]
    args += ["--stop", "trials"]
    args += ["--max-epochs", "1", "--input-size", "32", "--device", "cpu", "--threads", "1"]
    args += ["--no-recommend", "--storage", url, "--study-name", "cli"]
    args += ["--plots", str(folder), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return {"url": url, "stdout": result.stdout, "stderr": result.stderr, "folder": folder}


def test_search_json_is_the_summary_and_decision_alone_on_stdout(
    searched: dict[str, Any],
) -> None:
    payload = json.loads(searched["stdout"])  # nothing but JSON on stdout
    summary, decision = payload["summary"], payload["decision"]
    assert summary["name"] == "cli" and summary["complete"] + summary["pruned"] == 2
    assert decision["chosen_trial"] in (0, 1) and isinstance(decision["chosen_depth"], int)
    assert [Path(p).name for p in payload["plots"]] == ["cli-depth.png", "cli-curves.png"]
    assert all(Path(p).is_file() for p in payload["plots"])


def test_search_off_a_terminal_prints_one_line_per_finished_trial(
    searched: dict[str, Any],
) -> None:
    line = re.compile(
        r"^trial #(\d+): k=\d+ (complete|pruned), (best )?accuracy \d\.\d{4} "
        r"\(1/1 epochs, \d+\.\d s\)$"
    )
    numbers = [int(m.group(1)) for m in map(line.match, searched["stderr"].splitlines()) if m]
    assert numbers == [0, 1], searched["stderr"]


def test_studies_list_and_show_as_json(searched: dict[str, Any]) -> None:
    listed = runner.invoke(app, ["studies", "list", "--storage", searched["url"], "--json"])
    assert listed.exit_code == 0, listed.output
    assert [s["name"] for s in json.loads(listed.stdout)] == ["cli"]
    shown = runner.invoke(app, ["studies", "show", "cli", "--storage", searched["url"], "--json"])
    assert shown.exit_code == 0, shown.output
    payload = json.loads(shown.stdout)
    assert payload["decision"] == json.loads(searched["stdout"])["decision"]
    assert payload["summary"]["name"] == "cli" and payload["plots"] == []


def test_studies_delete_asks_first_and_names_what_exists(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/d.db"
    for name in ("keep", "drop"):
        study = optuna.create_study(storage=url, study_name=name)
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    missing = runner.invoke(app, ["studies", "delete", "nope", "--storage", url])
    assert missing.exit_code == 2
    assert "No study 'nope'" in missing.output and "it holds: keep, drop." in missing.output
    declined = runner.invoke(app, ["studies", "delete", "drop", "--storage", url], input="n\n")
    assert declined.exit_code == 1 and "Delete study 'drop' (1 trials)" in declined.output
    assert sorted(optuna.get_all_study_names(url)) == ["drop", "keep"]
    confirmed = runner.invoke(app, ["studies", "delete", "drop", "--storage", url], input="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert optuna.get_all_study_names(url) == ["keep"]
    forced = runner.invoke(app, ["studies", "delete", "keep", "--storage", url, "--yes"])
    assert forced.exit_code == 0 and "deleted study 'keep'" in forced.output
    assert optuna.get_all_study_names(url) == []
