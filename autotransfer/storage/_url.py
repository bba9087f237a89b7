"""``StorageURL``: a study storage reference, parsed once into what every caller asks of it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import sqlalchemy
from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

from autotransfer.errors import UserInputError

DEFAULT_STORAGE = "sqlite:///autotransfer.db"
JOURNAL_SUFFIXES = (".log", ".jsonl", ".journal")
Kind = Literal["sqlite", "journal", "postgresql", "rdb"]
_FORMS = (
    "a database URL (sqlite:///file.db, postgresql+psycopg://user@host/db) or a journal file "
    "(journal:///path/file.log)"
)


@dataclass(frozen=True)
class StorageURL:
    """Where studies live: a SQLite file, a journal file, PostgreSQL or another SQL database.

    >>> StorageURL.parse("sqlite:///runs/study.db").path
    PosixPath('runs/study.db')
    >>> StorageURL.parse("journal:///tmp/s.log").kind, StorageURL.parse("x/s.jsonl").kind
    ('journal', 'journal')
    """

    text: str
    kind: Kind
    # the file of a SQLite or journal storage; None for a server or an in-memory database
    path: Path | None

    @classmethod
    def parse(cls, value: str | StorageURL) -> StorageURL:
        if isinstance(value, StorageURL):
            return value
        if not isinstance(value, str) or not value.strip():
            raise UserInputError(f"storage must be {_FORMS}, but got {value!r}.")
        text = value.strip()
        if text.startswith("journal://") or text.endswith(JOURNAL_SUFFIXES):
            return cls(text, "journal", Path(text.removeprefix("journal://")))
        if "://" not in text:
            raise UserInputError(f"storage must be {_FORMS}, but got {text!r}.")
        try:
            url = sqlalchemy.engine.make_url(text)
            url.get_dialect()  # an unknown database kind fails here, not at the first query
        except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.NoSuchModuleError) as exc:
            raise UserInputError(
                f"storage {text!r} is not a usable database URL ({exc}); use {_FORMS}."
            ) from None
        backend = url.get_backend_name()
        if backend == "sqlite":
            database = url.database
            path = Path(database) if database and database != ":memory:" else None
            return cls(text, "sqlite", path)
        return cls(text, "postgresql" if backend == "postgresql" else "rdb", None)

    @property
    def in_memory(self) -> bool:
        return self.kind == "sqlite" and self.path is None

    @property
    def is_file(self) -> bool:
        """Whether the storage is one file on this machine's file system."""
        return self.path is not None

    def folder_beside(self, suffix: str) -> Path | None:
        """``study.db`` → ``study<suffix>`` next to it, for things that belong to the file's
        studies (the feature cache); None for a server or an in-memory database."""
        return self.path.with_name(self.path.stem + suffix) if self.path is not None else None

    def __str__(self) -> str:
        return self.text

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        # a field typed StorageURL takes a string (or a StorageURL) and serialises as one
        return core_schema.no_info_plain_validator_function(
            _validate, serialization=core_schema.to_string_ser_schema()
        )


def _validate(value: Any) -> StorageURL:
    try:
        return StorageURL.parse(value)
    except UserInputError as exc:
        raise ValueError(str(exc)) from None
