"""Service settings from the environment (``AUTOTRANSFER_*``), refusing insecure defaults."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from autotransfer.storage import DEFAULT_STORAGE, StorageURL
from service.throttle import parse_rule

MIN_KEY_LENGTH = 16


def _split(value: object) -> object:
    # comma-separated in the environment; a list when given in code
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every setting reads ``AUTOTRANSFER_<NAME>``; lists are comma-separated."""

    model_config = SettingsConfigDict(env_prefix="AUTOTRANSFER_", extra="ignore")

    database_url: Annotated[StorageURL, NoDecode] = Field(
        StorageURL.parse(DEFAULT_STORAGE),
        description="job store and Optuna storage (sqlite:///… or postgresql…)",
    )
    dev: bool = Field(False, description="development mode: no API key needed")
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="bearer tokens accepted by the API and the dashboard"
    )
    public_reads: bool = Field(False, description="GET routes without a key")
    data_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, description="folders dataset paths must lie in"
    )
    artifacts_dir: Path | None = Field(
        None,
        description="where studies keep their chosen models (Optuna artifacts); shared by the "
        "API, the workers and Ray nodes. Default: beside a SQLite database, else "
        "./autotransfer-artifacts",
    )
    max_trials: int = Field(200, ge=1)
    max_epochs: int = Field(50, ge=1)
    max_timeout_s: float = Field(24 * 3600.0, gt=0)
    heartbeat_s: float = Field(10.0, gt=0, description="job heartbeat interval of a worker")
    stale_after_s: float = Field(60.0, gt=0, description="silence after which a job is re-queued")
    trial_heartbeat_s: int = Field(10, ge=1, description="Optuna trial heartbeat interval")
    trial_grace_s: int = Field(60, ge=2, description="Optuna grace before a silent trial fails")
    poll_s: float = Field(1.0, gt=0, description="how often an idle worker looks for jobs")
    device: str = "auto"
    threads: int | None = Field(None, ge=1)
    dashboard: bool = True
    warm_catalog: bool = Field(True, description="build the backbone table at start-up")
    max_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="largest request body accepted (413 above it)"
    )
    auth_failures: str = Field(
        "10/minute;100/hour",
        description="wrong keys one client address may send before it gets 429 ('limits' rates)",
    )
    max_dataset_bytes: int = Field(
        2 * 1024**3,
        ge=1024**2,
        description="largest .npz dataset accepted, in bytes of its arrays once loaded (read "
        "from their headers): the API loads a recommendation's data in its own process",
    )
    max_probe_pixels: int = Field(
        256 * 128 * 128,
        ge=8 * 8 * 8,
        description="largest sample the recommender may probe, in images × input_size²",
    )

    _split_keys = field_validator("api_keys", "data_roots", mode="before")(_split)

    @field_validator("auth_failures")
    @classmethod
    def _rate(cls, value: str) -> str:
        parse_rule(value)
        return value

    @model_validator(mode="after")
    def _secure(self) -> Settings:
        if self.dev:
            return self
        if not self.api_keys:
            raise ValueError(
                "AUTOTRANSFER_API_KEYS is empty: set one or more comma-separated keys of at least "
                f"{MIN_KEY_LENGTH} characters, or start in development mode "
                "(AUTOTRANSFER_DEV=1 / --dev) on a trusted machine."
            )
        short = [f"key #{i + 1}" for i, k in enumerate(self.api_keys) if len(k) < MIN_KEY_LENGTH]
        if short:
            raise ValueError(
                f"AUTOTRANSFER_API_KEYS: {', '.join(short)} shorter than {MIN_KEY_LENGTH} "
                "characters; generate one with `python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'`."
            )
        return self

    @property
    def resolved_roots(self) -> list[Path]:
        return [root.expanduser().resolve() for root in self.data_roots]


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
