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
