"""The core install runs the main job; a command that needs an extra says which, in one line.

A fresh virtual environment per test would download torch; instead each check runs the real
command in a subprocess where the extras' modules cannot be imported (``sys.modules[name] =
None`` makes ``import name`` fail exactly as it does when the package is not installed).
``pip install -e .`` in a fresh venv was checked by hand (docs/architecture.md, Packaging).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from autotransfer.errors import EXTRAS

# what `pip install autotransfer` (no extras) leaves out
ABSENT = sorted({*EXTRAS, "httpx", "starlette"})


def _run(
    args: list[str], cwd: Path, absent: list[str] = ABSENT
) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\n"
        f"for name in {absent!r}:\n"
        "    sys.modules[name] = None\n"
        "from autotransfer.cli import main\n"
        f"sys.argv = ['autotransfer', *{args!r}]\n"
        "main()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_the_main_job_runs_without_any_extra(tmp_path: Path) -> None:
    args = ["search", "--dataset", "digits", "--max-train", "120", "--max-val", "60"]
    args += ["--input-size", "32", "--max-epochs", "1", "--trials", "1", "--stop", "trials"]
    args += ["--no-recommend", "--threads", "1", "--device", "cpu"]
    done = _run(args, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "chosen freeze depth" in done.stdout, done.stdout[-2000:]
    assert (tmp_path / "autotransfer.db").is_file()


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["serve", "--dev"], "service"),
        (["worker", "--dev"], "service"),
        (["dashboard"], "service"),
        (["search", "--dataset", "digits", "--backend", "ray", "--max-train", "60"], "ray"),
    ],
)
def test_a_command_that_needs_an_extra_names_it_in_one_line(
    tmp_path: Path, args: list[str], extra: str
) -> None:
    done = _run(args, tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr[-3000:])
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"needs the '{extra}' extra" in lines[0], lines
    assert f"pip install 'autotransfer[{extra}]'" in lines[0], lines
