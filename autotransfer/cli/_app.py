"""The Typer app, its two consoles, and how bad input ends: one line and exit code 2."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Mapping
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from autotransfer.cli._options import CHOICES
from autotransfer.errors import UserInputError

app = typer.Typer(
    help="Search how deep to fine-tune a pretrained vision backbone on your image dataset.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # click's own help layout wraps long option names and defaults; Rich's table cuts them
    # ("--heartbeat-inte…") once the terminal is narrower than the widest row
    rich_markup_mode=None,
)
console = Console(stderr=True)  # progress, logs and errors
out = Console()  # results: what a user pipes or redirects


@app.callback()
def setup(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every epoch.")] = False,
) -> None:
    import warnings

    # heartbeats, TPE's group mode and QMC are "experimental" in Optuna; the command relies
    # on them on purpose, so their warnings are noise to its users
    warnings.filterwarnings("ignore", message=".*experimental.*")
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
    )


def fail(message: str) -> NoReturn:
    """Print ``error: message`` on stderr and exit with code 2 (bad input), no traceback."""
    # one line whatever the width: a terminal wraps it, a log keeps it whole
    # the message is text, not markup: "autotransfer[service]" must print as written
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


@contextlib.contextmanager
def user_errors(flags: Mapping[str, str] | None = None) -> Iterator[None]:
    """Turn invalid input into one clear line and exit code 2, never a traceback.

    Fields are named as flags: ``flags`` maps a field to the command's flag where that is
    not the field's name with dashes (``{"timeout_s": "--timeout"}``). Advice from the
    library in Python's spelling (``on_corrupt='skip'``) reads ``--on-corrupt skip``.
    """
    try:
        yield
    except ValidationError as exc:
        fail(validation_message(exc, flags or {}))
    except UserInputError as exc:
        fail(flag_advice(_last_line(str(exc))))


def _last_line(message: str) -> str:
    # an error raised in a DataLoader worker arrives wrapped in the worker's traceback;
    # the user needs only its last line
    if "Traceback (most recent call last)" in message:
        last = message.strip().splitlines()[-1]
        return last.split("Error: ", 1)[-1]
    return message


def _flag(field: str, flags: Mapping[str, str]) -> str:
    return flags.get(field, f"--{field.replace('_', '-')}")


def validation_message(exc: ValidationError, flags: Mapping[str, str]) -> str:
    """One line: each bad field as ``--flag=value: why`` (the why names the fix)."""
    parts = []
    for err in exc.errors():
        loc = err["loc"]
        name = _flag(str(loc[0]), flags) + "".join(f".{p}" for p in loc[1:]) if loc else "config"
        why = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{name}={err.get('input')!r}: {why}")
    return "; ".join(parts)


_KEYWORD = re.compile(r"\b([a-z][a-z0-9_]*)='([^']*)'")


def flag_advice(message: str) -> str:
    """``load with on_corrupt='skip'`` → ``load with --on-corrupt skip``.

    Only a choice option's keyword with one of its choices is rewritten: that is advice
    to follow on the command line, while a bad value the message quotes (``budget='lots'``)
    is no choice and stays as the user's input was echoed.
    """

    def spell(m: re.Match[str]) -> str:
        name, value = m.group(1), m.group(2)
        return f"{_flag(name, {})} {value}" if value in CHOICES.get(name, ()) else m.group(0)

    return _KEYWORD.sub(spell, message)
