"""``python -m autotransfer``: the same as the ``autotransfer`` command."""

from autotransfer.cli import app

app(prog_name="autotransfer")
