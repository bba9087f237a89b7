"""Reading search-space YAML files: packaged names or a user's path, errors with field paths."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from autotransfer.errors import UserInputError
from autotransfer.spec._search_spec import SearchSpec


class SpecError(UserInputError):
    """An invalid search-space file: names the file, the field path and the bad value."""


def _packaged_dir() -> Path:
    return Path(str(resources.files("autotransfer.search_spaces")))


def packaged_specs() -> dict[str, Path]:
    """Names and paths of the search spaces shipped with the package."""
    return {p.stem: p for p in sorted(_packaged_dir().glob("*.yaml"))}


def _format(error: dict[str, Any]) -> str:
    loc = ".".join(str(part) for part in error["loc"] if not str(part).startswith("function-"))
    # drop pydantic's union tags ("float", "int", …) from the path: users never wrote them
    parts = [
        p
        for p in loc.split(".")
        if p
        not in {
            "float",
            "int",
            "categorical",
            "bool",
            "depth",
            "hyperband",
            "successive_halving",
            "median",
            "none",
            "tpe",
            "random",
            "gp",
            "qmc",
        }
    ]
    where = ".".join(parts) or "(top level)"
    value = error.get("input")
    shown = "" if isinstance(value, dict) else f" (got {value!r})"
    return f"{where}: {error['msg']}{shown}"


def parse_spec(data: object, *, source: str) -> SearchSpec:
    if not isinstance(data, dict):
        raise SpecError(
            f"{source}: the file must be a YAML mapping with name, parameters and "
            f"budget, but got {type(data).__name__}."
        )
    try:
        return SearchSpec.model_validate(data)
    except ValidationError as exc:
        lines = "\n  ".join(_format(e) for e in exc.errors())  # type: ignore[arg-type]
        raise SpecError(f"{source}: invalid search space:\n  {lines}") from None


def load_spec(ref: str | Path) -> SearchSpec:
    """Load a packaged search space by name (``default``) or a YAML file by path."""
    packaged = packaged_specs()
    if isinstance(ref, str) and ref in packaged:
        path = packaged[ref]
    else:
        path = Path(ref).expanduser()
        if not path.is_file():
            raise SpecError(
                f"No search space {str(ref)!r}: use a packaged name ({', '.join(packaged)}) or "
                f"the path of a YAML file."
            )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(f"{path}:{where} is not valid YAML: {exc}") from None
    return parse_spec(data, source=str(path))
