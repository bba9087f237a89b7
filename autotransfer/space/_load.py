"""Reading search-space YAML files: packaged names or a user's path, errors with field paths.

A search space may come from anyone (a file, an HTTP body), so reading it is bounded: the
file's size, its nesting depth and the length of every error message are capped, and YAML
anchors and aliases, which let a few lines expand to gigabytes, are refused.
"""

from __future__ import annotations

import reprlib
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from autotransfer.errors import UserInputError
from autotransfer.space._search_spec import SearchSpec

MAX_BYTES = 64 * 1024  # a search space is a few kB; 64 kB parses in well under a second
MAX_DEPTH = 50  # nesting levels; a real space has about six
MAX_LISTED = 20  # errors listed in one message
_SHOWN = 100  # characters of a bad value a message echoes


class SpecError(UserInputError):
    """An invalid search-space file: names the file, the field path and the bad value."""


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML this loader does not read (an alias, an anchor, too deep a nesting)."""


class _SpaceLoader(yaml.SafeLoader):
    """``SafeLoader`` without anchors and aliases, and with a nesting limit.

    Refused while composing, before anything is expanded or constructed, so a "billion
    laughs" file or thousands of nested brackets end in a few milliseconds, not in
    ``MemoryError`` or ``RecursionError``.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(
                problem="YAML anchors and aliases (&name, *name) are not accepted in a search "
                "space; write the values out",
                problem_mark=event.start_mark,
            )
        if self._depth >= MAX_DEPTH:
            raise _Refused(
                problem=f"nested more than {MAX_DEPTH} levels deep; a search space needs a "
                "handful, so flatten it",
                problem_mark=event.start_mark,
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _packaged_dir() -> Path:
    return Path(str(resources.files("autotransfer.search_spaces")))


def packaged_specs() -> dict[str, Path]:
    """Names and paths of the search spaces shipped with the package."""
    return {p.stem: p for p in sorted(_packaged_dir().glob("*.yaml"))}


_UNION_TAGS = {
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


def _repr(value: object) -> str:
    """``repr`` of at most ``_SHOWN`` characters, in bounded work whatever the value's size."""
    short = reprlib.Repr()
    short.maxlevel, short.maxstring, short.maxother = 3, _SHOWN, _SHOWN
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 8
    return _cut(short.repr(value), _SHOWN)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _format(error: dict[str, Any]) -> str:
    loc = ".".join(str(part) for part in error["loc"] if not str(part).startswith("function-"))
    # drop pydantic's union tags ("float", "int", …) from the path: users never wrote them
    parts = [p for p in loc.split(".") if p not in _UNION_TAGS]
    where = _cut(".".join(parts), _SHOWN) or "(top level)"
    value = error.get("input")
    shown = "" if isinstance(value, dict) else f" (got {_repr(value)})"
    # a validator's message is ours and bounded (the registry's names); the user's input is
    # what gets cut
    return _cut(f"{where}: {error['msg']}{shown}", 40 * _SHOWN)


def _check_depth(data: object, source: str) -> None:
    """Values nested deeper than ``MAX_DEPTH`` (an inline spec has no loader to stop them)."""
    level: list[object] = [data]
    for _ in range(MAX_DEPTH + 1):
        # one visit per object and level: values shared many times over stay cheap
        children = {
            id(child): child
            for value in level
            if isinstance(value, dict | list)
            for child in (value.values() if isinstance(value, dict) else value)
            if isinstance(child, dict | list)
        }
        if not children:
            return
        level = list(children.values())
    raise SpecError(
        f"{source}: nested more than {MAX_DEPTH} levels deep; a search space needs a handful, "
        "so flatten it."
    )


def parse_spec(data: object, *, source: str) -> SearchSpec:
    """Validate a search space given as values (a parsed file, an HTTP body's ``spec``)."""
    if not isinstance(data, dict):
        raise SpecError(
            f"{source}: the file must be a YAML mapping with name, parameters and "
            f"budget, but got {type(data).__name__}."
        )
    _check_depth(data, source)
    try:
        return SearchSpec.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        lines = [_format(e) for e in errors[:MAX_LISTED]]  # type: ignore[arg-type]
        if len(errors) > MAX_LISTED:
            lines.append(f"… and {len(errors) - MAX_LISTED} more; fix these first")
        listing = "\n  ".join(lines)
        raise SpecError(f"{source}: invalid search space:\n  {listing}") from None


def _read_text(path: Path) -> str:
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise SpecError(
            f"{path}: {size} bytes is too large for a search space (at most {MAX_BYTES}); "
            "a space is a few kB of YAML."
        )
    with path.open("rb") as file:
        raw = file.read(MAX_BYTES + 1)  # the file may have grown since stat
    if len(raw) > MAX_BYTES:
        raise SpecError(f"{path}: too large for a search space (at most {MAX_BYTES} bytes).")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError(
            f"{path}: line {line}: byte {raw[exc.start]:#04x} is not UTF-8; save the file "
            "as UTF-8 text."
        ) from None


def load_spec(ref: str | Path) -> SearchSpec:
    """Load a packaged search space by name (``default``) or a YAML file by path."""
    packaged = packaged_specs()
    if isinstance(ref, str) and ref in packaged:
        path = packaged[ref]
    else:
        path = Path(ref).expanduser()
        if not path.is_file():
            raise SpecError(
                f"No search space {_cut(str(ref), _SHOWN)!r}: use a packaged name "
                f"({', '.join(packaged)}) or the path of a YAML file."
            )
    loader = _SpaceLoader(_read_text(path))
    try:
        data = loader.get_single_data()
    except _Refused as exc:
        mark = exc.problem_mark
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        raise SpecError(f"{path}:{where} {exc.problem}.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{path}:{where} is not valid YAML: {problem}") from None
    finally:
        loader.dispose()
    return parse_spec(data, source=str(path))
