"""Seeds for a study's first trials."""

from __future__ import annotations

from autotransfer.search._prepared import PreparedSearch, Seed


def default_seeds(p: PreparedSearch) -> list[Seed]:
    """The seeds a search starts from when the caller gives none."""
    return []
