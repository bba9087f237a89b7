"""Hostile search-space files end in one named error line and exit 2, at once.

An alias bomb ("billion laughs"), bytes that are not UTF-8 and thousands of nested brackets
once hung the command, or ended in ``MemoryError``, ``UnicodeDecodeError`` or
``RecursionError`` tracebacks.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autotransfer.cli import app
from autotransfer.space import SpecError, parse_spec

runner = CliRunner()


def _laughs(levels: int = 9) -> list[str]:
    """Anchors ``l0``…``l8``, each nine of the one before: 9**9 strings once expanded."""
    lines = ["&l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"&l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return lines


BOMB_AT_TOP = "".join(f"k{i}: {line}\n" for i, line in enumerate(_laughs()))
BOMB_IN_CHOICES = (
    "name: bomb\nparameters:\n  optimizer:\n    type: categorical\n    choices:\n"
    + "".join(f"      - {line}\n" for line in _laughs())
)
DEEP = "name: deep\nparameters:\n  base_lr: " + "[" * 5000 + "]" * 5000 + "\n"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (BOMB_AT_TOP.encode(), "anchors and aliases (&name, *name) are not accepted"),
        (BOMB_IN_CHOICES.encode(), "anchors and aliases (&name, *name) are not accepted"),
        (b"name: caf\xe9\nparameters: {}\n", "line 1: byte 0xe9 is not UTF-8"),
        (DEEP.encode(), "nested more than 50 levels deep"),
    ],
    ids=["alias-bomb", "alias-bomb-in-choices", "not-utf8", "5000-deep"],
)
def test_hostile_space_is_one_error_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes, expected: str
) -> None:
    monkeypatch.chdir(tmp_path)  # nothing the command might write lands in the working tree
    space = tmp_path / "space.yaml"
    space.write_bytes(content)
    args = ["search", "--space", str(space), "--dataset", "digits", "--threads", "1"]
    args += ["--storage", f"sqlite:///{tmp_path / 'study.db'}", "--no-recommend"]
    start = time.monotonic()
    result = runner.invoke(app, args)
    elapsed = time.monotonic() - start
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output[:2000]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output[:2000]
    assert str(space) in lines[0] and expected in lines[0], lines[0]
    assert elapsed < 2.0, f"{elapsed:.2f} s"
    assert not (tmp_path / "study.db").exists()


def test_thousands_of_unknown_parameters_give_a_short_message() -> None:
    params = {f"p{i}": {"type": "float", "low": 0.1, "high": 1.0} for i in range(5000)}
    with pytest.raises(SpecError) as info:
        parse_spec({"name": "many", "parameters": params}, source="many.yaml")
    message = str(info.value)
    assert len(message) < 2_000, len(message)
    assert "unknown parameters ['p0', 'p1'" in message and "… and 4990 more]" in message
    assert "searchable fields are" in message and "base_lr" in message  # the fix survives


def test_thousands_of_bad_parameters_list_twenty_errors_and_a_count() -> None:
    params = {f"p{i}": 3 for i in range(3000)}
    with pytest.raises(SpecError) as info:
        parse_spec({"name": "many", "parameters": params}, source="many.yaml")
    lines = str(info.value).splitlines()
    assert len(lines) == 22, lines[:3]  # the file, twenty errors, the count
    assert lines[-1].strip().startswith("… and ") and lines[-1].endswith("more; fix these first")


def test_a_huge_bad_value_is_shown_cut_short() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec({"name": "x " * 500_000, "parameters": {}}, source="long.yaml")
    message = str(info.value)
    assert len(message) < 500 and "(got 'x x x" in message, message[:600]


def test_an_inline_spec_nested_too_deep_is_refused() -> None:
    deep: object = 1.0
    for _ in range(900):  # as deep as a JSON body the service's parser still reads
        deep = [deep]
    with pytest.raises(SpecError, match="spec: nested more than 50 levels deep"):
        parse_spec({"name": "deep", "parameters": {"base_lr": deep}}, source="spec")


def test_a_file_too_large_is_refused_before_it_is_read(tmp_path: Path) -> None:
    from autotransfer.space import load_spec

    path = tmp_path / "big.yaml"
    path.write_text("name: big\n" + "# padding\n" * 10_000)
    with pytest.raises(SpecError, match=r"big\.yaml: \d+ bytes is too large for a search space"):
        load_spec(str(path))


def test_an_inline_spec_too_deep_or_too_long_is_422_on_the_api(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.settings import Settings

    key = "test-key-0123456789abcdef-aaaa"
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'jobs.db'}",
        api_keys=[key],
        warm_catalog=False,
        dashboard=False,
        artifacts_dir=tmp_path / "artifacts",
    )
    client = TestClient(create_app(settings))
    deep: object = 0.1
    for _ in range(200):
        deep = [deep]
    many = {f"p{i}": {"type": "float", "low": 0.1, "high": 1.0} for i in range(3000)}
    for parameters, words in (({"base_lr": deep}, "nested more than 50"), (many, "2990 more")):
        body = {"dataset": "synthetic:classes=3", "spec": {"name": "x", "parameters": parameters}}
        start = time.monotonic()
        r = client.post("/v1/studies", json=body, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 422, r.text[:500]
        assert len(r.text) < 2_000 and words in r.text, r.text[:500]
        assert time.monotonic() - start < 2.0
    # 5,000 levels: the JSON parser itself gives up (RecursionError), before any field is read
    raw = '{"dataset": "digits", "spec": {"name": "x", "parameters": {"base_lr": '
    raw += "[" * 5000 + "0.1" + "]" * 5000 + "}}}"
    headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
    r = client.post("/v1/studies", content=raw, headers=headers)
    assert r.status_code == 422, r.text[:500]
    assert "nested too deeply" in r.json()["detail"][0]["msg"], r.text[:500]
