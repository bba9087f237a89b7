"""The README's commands, run as written (slow: the main search takes minutes on 2 cores)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands(prefix: str) -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    return [line for b in blocks for line in b.splitlines() if line.startswith(prefix)]


def test_readme_names_its_commands() -> None:
    assert readme_commands("autotransfer search"), "README must show the main search command"
    assert readme_commands("autotransfer train")
    assert readme_commands("pytest")


@pytest.mark.slow
@pytest.mark.parametrize("command", readme_commands("autotransfer "))
def test_readme_command_runs_as_written(command: str, tmp_path: Path) -> None:
    if "dashboard" in command:
        pytest.skip("serves until stopped; covered by test_search.py over HTTP")
    env = {**os.environ, "COLUMNS": "120"}
    done = subprocess.run(
        shlex.split(command), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800
    )
    assert done.returncode == 0, done.stderr[-3000:]
