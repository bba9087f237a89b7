"""What a trial that runs away from the storage reports about itself, in the study record's names.

A Ray trial never touches the Optuna storage: each report it sends carries, beside its epoch,
where it runs and, once it raised, its error, under :class:`record.TrialInfo`'s names (checked
here, on the worker). The driver reads a report back with :func:`read_report` and hands it to
the engine, which writes the records. Executors build and read reports only through this
module, so none of them spells a record name.
"""

from __future__ import annotations

from typing import Any

from autotransfer import record


def where(worker: str, ray_node: str) -> dict[str, Any]:
    """Where the trial runs: the process (``host:pid``) and its Ray node."""
    return record.trial_attrs(worker=worker, ray_node=ray_node)


def failure(error: str, traceback: str) -> dict[str, Any]:
    """How the trial failed: ``Type: message`` and the traceback."""
    return record.trial_attrs(error=error, traceback=traceback)


def read_report(result: dict[str, Any]) -> record.TrialInfo:
    """The record fields a report carries (``worker``, ``ray_node``, ``error``, …); its
    other keys (the epoch's, Tune's own) are ignored."""
    return record.TrialInfo.from_attrs(result)
