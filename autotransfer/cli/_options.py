"""Options shared by several commands, and command options derived from a pydantic model.

``model_options(SearchRequest, ...)`` turns a model's fields into a command's parameters, so
``autotransfer search`` takes exactly what ``SearchRequest`` accepts, with the same defaults
and the fields' descriptions as help, and the model stays the one place that validates them.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from autotransfer.finetune import TrialConfig
from autotransfer.search import SearchOptions

if TYPE_CHECKING:
    from autotransfer.data import TransferDataset

F = TypeVar("F", bound=Callable[..., Any])
OnCorrupt = Literal["skip", "error"]
# the command line's choice options by field: advice the library words as a Python keyword
# with one of these values is reworded as the flag (see user_errors)
CHOICES: dict[str, tuple[str, ...]] = {
    "on_corrupt": get_args(OnCorrupt),
    "optimizer": get_args(TrialConfig.model_fields["optimizer"].annotation),
}
_TEXT = (str, int, float, bool, Path)


def _describe(field: str) -> str:
    return SearchOptions.model_fields[field].description or ""


DatasetOpt = Annotated[str, typer.Option("--dataset", "-d", help=_describe("dataset"))]
BackboneOpt = Annotated[str, typer.Option("--backbone", "-b", help=_describe("backbone"))]
WeightsOpt = Annotated[str, typer.Option(help=_describe("weights"))]
OnCorruptOpt = Annotated[OnCorrupt, typer.Option(help=_describe("on_corrupt"))]
ValFractionOpt = Annotated[float, typer.Option(help=_describe("val_fraction"))]
MaxTrainOpt = Annotated[int | None, typer.Option(help=_describe("max_train"))]
MaxValOpt = Annotated[int | None, typer.Option(help=_describe("max_val"))]
InputSizeOpt = Annotated[int | None, typer.Option(help=_describe("input_size"))]
ThreadsOpt = Annotated[int | None, typer.Option(help="CPU threads (default: all cores)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the result as JSON on stdout")]
StorageOpt = Annotated[
    str, typer.Option(help="sqlite:///file.db, postgresql+psycopg://…, or journal:///file.log")
]
ToleranceOpt = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        max=1.0,
        help="show the decision at this tolerance (the score a cheaper choice may give up, "
        "0.005 = half a point) instead of the one the search stored at its space's tolerance",
    ),
]


def load_data(
    dataset: str,
    *,
    val_fraction: float,
    seed: int,
    on_corrupt: OnCorrupt,
    max_train: int | None = None,
    max_val: int | None = None,
) -> TransferDataset:
    """The dataset a command names, split and subset (``profile``, ``train``, ``recommend``)."""
    from autotransfer.data import load_dataset

    return load_dataset(
        dataset,
        val_fraction=val_fraction,
        seed=seed,
        max_train=max_train,
        max_val=max_val,
        on_corrupt=on_corrupt,
    )


def _flag_type(model: type[BaseModel], name: str, annotation: Any) -> Any:
    """The type a command line gives a field: its own for plain values and choices, ``str``
    for a value class the model parses from text (one with a ``parse`` classmethod, such as
    ``DatasetRef`` and ``StorageURL``)."""
    if get_origin(annotation) in (Union, types.UnionType):
        present = [a for a in get_args(annotation) if a is not type(None)]
        if len(present) != 1:
            raise TypeError(
                f"{model.__name__}.{name}: {annotation} has no single command-line type; "
                f"exclude it from the options or give it one type."
            )
        annotation = present[0]
    if annotation in _TEXT or get_origin(annotation) is Literal:
        return annotation
    if isinstance(annotation, type) and callable(getattr(annotation, "parse", None)):
        return str
    raise TypeError(
        f"{model.__name__}.{name} of type {annotation} has no command-line form; exclude it "
        f"from the options (as `spec` is for search) or give the model a text form for it."
    )


def _default(field: FieldInfo) -> Any:
    if field.is_required():
        return inspect.Parameter.empty
    value = field.get_default(call_default_factory=True)
    return value if value is None or isinstance(value, _TEXT) else str(value)


def model_options(
    model: type[BaseModel],
    *,
    exclude: Iterable[str] = (),
    flags: Mapping[str, Sequence[str]] | None = None,
    helps: Mapping[str, str] | None = None,
) -> list[inspect.Parameter]:
    """One keyword parameter per field of ``model``, for a Typer command's signature.

    Each field becomes ``--name-with-dashes`` (``flags`` gives other spellings, e.g.
    ``{"timeout_s": ["--timeout"]}``), with the field's default and its description as the
    help (``helps`` rewords it where a command gives the field more meaning); a ``bool``
    becomes ``--x/--no-x``, a ``Literal`` a choice, ``X | None`` an optional ``X``. Values
    are only converted here; the model checks them when the command builds it, so its error
    names the flag through :func:`autotransfer.cli.user_errors`. Fields whose type has no
    text form (a nested model, a dict) must be excluded.
    """
    flags, helps = flags or {}, helps or {}
    skipped = set(exclude)
    params = []
    for name, field in model.model_fields.items():
        if name in skipped:
            continue
        assert field.annotation is not None
        kind = _flag_type(model, name, field.annotation)
        decls = list(flags.get(name, [f"--{name.replace('_', '-')}"]))
        if kind is bool:
            long = next(d for d in decls if d.startswith("--"))
            decls = [f"{long}/--no-{long.removeprefix('--')}", *(d for d in decls if d != long)]
        if not field.is_required() and field.get_default() is None:
            kind = kind | None
        # a long list of choices would run past 80 columns as the metavar: its name instead
        # (the field's description lists them; a wrong value is refused naming them all)
        optional = get_origin(kind) in (Union, types.UnionType)
        plain = next(a for a in get_args(kind) if a is not type(None)) if optional else kind
        choices = get_args(plain) if get_origin(plain) is Literal else ()
        metavar = name.upper() if len("|".join(map(str, choices))) > 40 else None
        option = typer.Option(
            *decls, help=helps.get(name, field.description or ""), metavar=metavar
        )
        annotation = Annotated[kind, option]  # type: ignore[valid-type]
        params.append(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=_default(field), annotation=annotation
            )
        )
    return params


def option(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    """A hand-written option (``annotation`` an ``Annotated[..., typer.Option(...)]``)."""
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
    )


def with_options(*groups: Sequence[inspect.Parameter]) -> Callable[[F], F]:
    """Give a ``def command(**values)`` these options: Typer reads ``__signature__``."""

    def decorate(func: F) -> F:
        params = [p for group in groups for p in group]
        func.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        return func

    return decorate
