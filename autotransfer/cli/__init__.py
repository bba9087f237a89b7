"""The ``autotransfer`` command.

Each module registers its commands on ``app`` explicitly (``register(app)``); commands of
other distributions (the HTTP service's ``serve`` and ``worker``) register through the
entry-point group ``autotransfer.commands``, so the library never imports them by name.
``user_errors`` and ``fail`` are for those commands too: bad input ends in one line and
exit code 2.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from autotransfer.cli import _recommend, _search, _studies, _train
from autotransfer.cli._app import app, fail, user_errors

__all__ = ["app", "fail", "main", "user_errors"]

for _module in (_train, _recommend, _search, _studies):
    _module.register(app)
for _entry in entry_points(group="autotransfer.commands"):
    _entry.load()(app)


def main() -> None:
    """Run the command (``python -m autotransfer``)."""
    app(prog_name="autotransfer")
