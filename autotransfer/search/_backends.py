"""The registered backends: a name → the ``module:Class`` of its executor (``_executor.py``).

A new backend is one module with an ``Executor`` class plus one line in ``BACKENDS``::

    BACKENDS = {
        "optuna": "autotransfer.search._optuna:OptunaExecutor",
        "ray": "autotransfer.search._ray:RayExecutor",
        "slurm": "autotransfer.search._slurm:SlurmExecutor",  # a third backend
    }

Nothing is imported until a search asks for its backend (Ray takes seconds to import).
"""

from __future__ import annotations

BACKENDS: dict[str, str] = {
    "optuna": "autotransfer.search._optuna:OptunaExecutor",
    "ray": "autotransfer.search._ray:RayExecutor",
}
