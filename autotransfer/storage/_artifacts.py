"""Where a study keeps files (the chosen model's weights): an Optuna artifact store."""

from __future__ import annotations

from pathlib import Path

from optuna.artifacts import FileSystemArtifactStore

from autotransfer.storage._url import StorageURL


def artifacts_folder(url: str | StorageURL, folder: str | Path | None = None) -> Path:
    """``folder``, else beside a storage file (``study.db`` → ``study-artifacts/``), else
    ``./autotransfer-artifacts`` (a server's studies: give every worker the same folder)."""
    if folder is not None:
        return Path(folder).expanduser()
    beside = StorageURL.parse(url).folder_beside("-artifacts")
    return beside if beside is not None else Path("autotransfer-artifacts")


def artifact_store(
    url: str | StorageURL, folder: str | Path | None = None
) -> FileSystemArtifactStore:
    """The file-system artifact store of the studies in ``url`` (created on first use)."""
    path = artifacts_folder(url, folder)
    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(path))
