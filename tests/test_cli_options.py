"""The command's options: ``search`` derives its own from ``SearchRequest``, and every
command's ``--help`` stays whole on an 80-column terminal."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from autotransfer.cli import app
from autotransfer.search import SearchRequest

REPORT_ONLY = {"export", "retrain", "plots", "tolerance", "json_out"}


def _commands() -> Iterator[tuple[list[str], Any]]:
    def walk(path: list[str], command: Any) -> Iterator[tuple[list[str], Any]]:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                yield from walk([*path, name], sub)
        else:
            yield path, command

    yield from walk([], typer.main.get_command(app))


COMMANDS = dict((" ".join(path), command) for path, command in _commands())


def _parse(args: list[str]) -> dict[str, Any]:
    group = typer.main.get_command(app)
    root = group.context_class(group, info_name="autotransfer")
    command = group.get_command(root, args[0])
    ctx = command.make_context(args[0], list(args[1:]), parent=root, resilient_parsing=False)
    return dict(ctx.params)


def test_search_options_are_the_request_fields_plus_reporting() -> None:
    names = {p.name for p in COMMANDS["search"].params}
    assert names == (set(SearchRequest.model_fields) - {"spec"}) | REPORT_ONLY


def test_search_keeps_its_flag_names_and_builds_a_request() -> None:
    params = _parse(
        [
            "search",
            "-d",
            "synthetic:classes=3",
            "-b",
            "resnet18",
            "--timeout",
            "90",
            "--storage",
            "postgresql+psycopg://u@h/db",
            "--study-name",
            "s",
            "--heartbeat-interval",
            "1",
            "--grace-period",
            "3",
            "--no-recommend",
            "--no-cache",
            "--max-concurrent-trials",
            "2",
            "--on-corrupt",
            "error",
            "--json",
        ]
    )
    assert params["timeout_s"] == 90.0 and params["json_out"] is True
    request = SearchRequest(**{k: v for k, v in params.items() if k not in REPORT_ONLY})
    assert (request.backbone, request.study_name, request.on_corrupt) == ("resnet18", "s", "error")
    assert (request.heartbeat_interval, request.grace_period) == (1, 3)
    assert request.recommend is False and request.cache is False
    assert request.max_concurrent_trials == 2 and request.storage.kind == "postgresql"
    # what is not given is the model's own default
    defaults = _parse(["search"])
    built = SearchRequest(**{k: v for k, v in defaults.items() if k not in REPORT_ONLY})
    assert built == SearchRequest()


def test_a_choice_is_checked_by_the_command_and_a_range_by_the_model() -> None:
    runner = CliRunner()
    bad_choice = runner.invoke(app, ["search", "--on-corrupt", "maybe"])
    assert bad_choice.exit_code == 2 and "maybe" in bad_choice.output
    bad_count = runner.invoke(app, ["search", "--workers", "0", "--timeout", "-5"])
    assert bad_count.exit_code == 2
    flat = " ".join(bad_count.output.split())
    assert "--workers=0: Input should be greater than or equal to 1" in flat
    assert "--timeout=-5.0: Input should be greater than 0" in flat


def test_every_option_has_help_text() -> None:
    missing = [
        f"{name} {p.opts[0]}"
        for name, command in COMMANDS.items()
        for p in command.params
        if p.opts[0].startswith("-") and not (p.help or "").strip()
    ]
    assert not missing, missing


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_at_80_columns_keeps_flags_and_defaults_whole(name: str) -> None:
    result = CliRunner(env={"COLUMNS": "80"}).invoke(app, [*name.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    flat = " ".join(result.output.split())
    for param in COMMANDS[name].params:
        for flag in [*param.opts, *param.secondary_opts]:
            if flag.startswith("--"):
                assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", flat), flag
        shown = param.default
        if shown is not None and not isinstance(shown, bool) and param.opts[0].startswith("-"):
            assert f"[default: {shown}]" in flat or f"[default: {shown};" in flat, (
                param.opts,
                shown,
            )
