"""``DatasetRef``: a dataset reference parsed once into its kind, path or generator options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

from autotransfer.data._errors import DatasetError
from autotransfer.data._synthetic import SyntheticSpec

Kind = Literal["digits", "fashion-mnist", "synthetic", "npz", "folder"]
MAX_REF_LENGTH = 1000
VALID_REFS = (
    "'digits', 'fashion-mnist' or 'fashion-mnist:DIR', 'synthetic' or "
    "'synthetic:difficulty=0.5,shift=0.8,classes=5,per_class=40,size=32', "
    "a path to an image folder, or a path to a .npz file"
)


def _looks_like_path(ref: str) -> bool:
    return "/" in ref or "\\" in ref or ref.startswith(("~", ".")) or ref.endswith(".npz")


@dataclass(frozen=True)
class DatasetRef:
    """What ``--dataset`` / ``"dataset"`` names, checked for form without reading any data.

    >>> DatasetRef.parse("synthetic:classes=3").synthetic.classes
    3
    >>> DatasetRef.parse("fashion-mnist:/data/fm").path
    PosixPath('/data/fm')
    >>> str(DatasetRef.parse("photos/cats.npz")), DatasetRef.parse("photos/cats.npz").kind
    ('photos/cats.npz', 'npz')
    """

    text: str
    kind: Kind
    path: Path | None = None  # a folder, a .npz file, or the folder of fashion-mnist:DIR
    synthetic: SyntheticSpec | None = None

    @classmethod
    def parse(cls, value: str | Path | DatasetRef) -> DatasetRef:
        if isinstance(value, DatasetRef):
            return value
        if isinstance(value, Path):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            raise DatasetError(f"dataset must be one of {VALID_REFS}, but got {value!r}.")
        if len(value) > MAX_REF_LENGTH or "\x00" in value:
            raise DatasetError(
                f"dataset reference of {len(value)} characters is not a usable name or path "
                f"(at most {MAX_REF_LENGTH}, no NUL bytes): {value[:60]!r}…; use one of "
                f"{VALID_REFS}."
            )
        name, _, options = value.partition(":")
        if value == "digits":
            return cls(value, "digits")
        if name == "fashion-mnist":
            return cls(value, "fashion-mnist", Path(options) if options else None)
        if name == "synthetic":
            return cls(value, "synthetic", synthetic=SyntheticSpec.parse(options))
        path = Path(value)  # as written: the loader expands ~, a server refuses it
        if not _looks_like_path(value) and not _exists(path):
            raise DatasetError(f"unknown dataset {value!r}; use one of: {VALID_REFS}.")
        kind: Kind = "npz" if path.suffix.lower() == ".npz" else "folder"
        return cls(value, kind, path)

    @property
    def builtin(self) -> bool:
        """Data that ships with the installed packages or is generated (no user path)."""
        return self.path is None

    def with_path(self, path: Path) -> DatasetRef:
        """The same reference with its path replaced (e.g. resolved inside a data root)."""
        if self.path is None:
            raise ValueError(f"{self.text!r} names no path, but got {path=}.")
        text = f"fashion-mnist:{path}" if self.kind == "fashion-mnist" else str(path)
        return DatasetRef(text, self.kind, path, self.synthetic)

    def __str__(self) -> str:
        return self.text

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        # a field typed DatasetRef takes a string and serialises as one
        return core_schema.no_info_plain_validator_function(
            _validate,
            serialization=core_schema.to_string_ser_schema(),
            json_schema_input_schema=core_schema.str_schema(max_length=MAX_REF_LENGTH),
        )


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a name too long for the file system is no existing path
        return False


def _validate(value: Any) -> DatasetRef:
    try:
        return DatasetRef.parse(value)
    except DatasetError as exc:
        raise ValueError(str(exc)) from None
