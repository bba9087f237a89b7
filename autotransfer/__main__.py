"""``python -m autotransfer``: the same as the ``autotransfer`` command."""

from autotransfer.cli import main

main()
