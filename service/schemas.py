"""Request and response bodies, split by role (``*Create`` in, ``*Public`` out)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.db import JobState

TINY_STUDY: dict[str, Any] = {
    "dataset": "synthetic:classes=3,per_class=20,size=32",
    "backbone": "efficientnet_lite0",
    "weights": "DEFAULT",
    "space": "small_data",
    "trials": 2,
    "max_epochs": 1,
    "input_size": 32,
    "recommend": False,
}


class StudyCreate(BaseModel):
    """A search job: data, backbone, search space (packaged name or inline) and budget."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                TINY_STUDY,
                {
                    "dataset": "digits",
                    "backbone": "efficientnet_lite0",
                    "space": "default",
                    "trials": 20,
                    "max_epochs": 4,
                    "study_name": "digits-lite0",
                },
            ]
        },
    )

    dataset: str = Field(
        min_length=1,
        max_length=1000,
        description="digits | fashion-mnist | synthetic[:k=v,...] | a folder or .npz file "
        "inside the server's data roots",
    )
    val_fraction: float = Field(0.2, gt=0, lt=1)
    max_train: int | None = Field(None, ge=2, le=10_000_000)
    max_val: int | None = Field(None, ge=2, le=10_000_000)
    backbone: str = Field("efficientnet_lite0", max_length=100)
    weights: str = Field(
        "DEFAULT", max_length=1000, description="DEFAULT, none, or a torchvision weight name"
    )
    space: str = Field("default", max_length=100, description="a packaged search space name")
    spec: dict[str, Any] | None = Field(
        None,
        description="an inline search space (the YAML file's content as JSON); wins over space",
    )
    trials: int | None = Field(None, ge=1, le=100_000)
    max_epochs: int | None = Field(None, ge=1, le=1000)
    timeout_s: float | None = Field(None, gt=0, le=365 * 86400)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    input_size: int | None = Field(None, ge=8, le=4096)
    recommend: bool = Field(True, description="seed the first trials with the recommender")
    cache: bool = Field(
        True,
        description="reuse frozen-prefix features across trials (kept beside a SQLite "
        "database, else in the worker's ~/.cache/autotransfer/features); false trains every "
        "epoch through the whole backbone",
    )
    backend: Literal["optuna", "ray"] = "optuna"
    study_name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:-]{1,200}$")


class Progress(BaseModel):
    requested: int | None = None
    finished: int = 0
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    waiting: int = 0


class StudyBrief(BaseModel):
    """A job as listed: identity, state and times."""

    id: str
    study_name: str
    state: JobState
    created_at: dt.datetime
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    attempts: int = 0
    cancel_requested: bool = False
    error: str | None = None


class StudyPublic(StudyBrief):
    """A job with its study's progress, best result, decision and recommendation."""

    request: dict[str, Any]
    progress: Progress
    best_value: float | None = None
    best_trial: int | None = None
    best_params: dict[str, Any] | None = None
    chosen_freeze_depth: int | None = None
    chosen_trial: int | None = None
    chosen_params: dict[str, Any] | None = None
    num_blocks: int | None = None
    recommendation: dict[str, Any] | None = None
    recommendation_audit: Any = None


class StudiesPublic(BaseModel):
    data: list[StudyBrief]
    count: int


class Accepted(BaseModel):
    id: str
    study_name: str
    state: JobState
    location: str


class TrialPublic(BaseModel):
    number: int
    state: str
    value: float | None = None
    values: list[float] | None = None
    params: dict[str, Any]
    intermediate_values: dict[int, float]
    user_attrs: dict[str, Any]
    datetime_start: dt.datetime | None = None
    datetime_complete: dt.datetime | None = None


class TrialsPublic(BaseModel):
    data: list[TrialPublic]
    count: int


class RecommendationCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "dataset": "synthetic:classes=3,per_class=20,size=32",
                    "backbone": "efficientnet_lite0",
                    "input_size": 32,
                    "budget": "limited",
                    "sample_size": 32,
                }
            ]
        },
    )

    dataset: str = Field(min_length=1, max_length=1000)
    val_fraction: float = Field(0.2, gt=0, lt=1)
    max_train: int | None = Field(None, ge=2, le=10_000_000)
    backbone: str = Field("efficientnet_lite0", max_length=100)
    weights: str = Field("DEFAULT", max_length=1000)
    input_size: int | None = Field(None, ge=8, le=512)
    budget: Literal["limited", "ample"] = "limited"
    sample_size: int = Field(256, ge=8, le=1024, description="images probed for similarity")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    batch_size: int = Field(
        64, ge=1, le=65536, description="the batch trials train with; the LRs scale with it"
    )


class SearchSpacePublic(BaseModel):
    name: str
    description: str | None = None
    spec: dict[str, Any]


class SearchSpacesPublic(BaseModel):
    data: list[SearchSpacePublic]
    count: int


class BackbonePublic(BaseModel):
    name: str
    family: str
    blocks: int
    weights: list[str]


class BackbonesPublic(BaseModel):
    data: list[BackbonePublic]
    count: int


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)
