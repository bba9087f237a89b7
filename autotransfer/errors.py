"""Errors raised for bad user input: each message names the bad value and the fix."""

from __future__ import annotations


class UserInputError(ValueError):
    """Invalid user input (flag, file, dataset, weights); the CLI prints it without a trace."""


class UnknownBackboneError(UserInputError):
    """A backbone name that is not registered."""


class WeightsError(UserInputError):
    """Weights that cannot be obtained or do not fit the architecture."""


class ConfigError(UserInputError):
    """A trial configuration value out of its valid range for the chosen backbone or data."""


class MissingExtraError(UserInputError):
    """A feature whose optional dependencies (a pip extra) are not installed."""


# what each extra brings, by the top-level module a feature imports first
EXTRAS = {
    "ray": "ray",
    "fastapi": "service",
    "uvicorn": "service",
    "pydantic_settings": "service",
    "psycopg": "service",
    "optuna_dashboard": "service",
    "a2wsgi": "service",
    "limits": "service",
    "fastapi_offline": "service",
}


def missing_extra(exc: ModuleNotFoundError, what: str) -> MissingExtraError:
    """The one-line error for ``what`` (e.g. "the ray backend") when ``exc`` is a module of an
    extra; re-raises ``exc`` for any other missing module (a broken install, not a choice).

    >>> print(missing_extra(ModuleNotFoundError(name="ray"), "the ray backend"))
    ... # doctest: +NORMALIZE_WHITESPACE
    the ray backend needs the 'ray' extra, which is not installed (no module 'ray'):
    pip install 'autotransfer[ray]'
    """
    top = (exc.name or "").partition(".")[0]
    extra = EXTRAS.get(top)
    if extra is None:
        raise exc
    return MissingExtraError(
        f"{what} needs the {extra!r} extra, which is not installed (no module {top!r}): "
        f"pip install 'autotransfer[{extra}]'"
    )
