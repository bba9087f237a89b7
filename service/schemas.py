"""Request and response bodies, split by role (``*Create`` in, ``*Public`` out)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from autotransfer.data import DatasetRef
from autotransfer.search import SearchOptions
from service.datarefs import as_root_relative
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


class StudyCreate(SearchOptions):
    """A search job: the options ``autotransfer search`` takes (the same model), with the
    search space named (``space``, a packaged one) or sent inline (``spec``), never both."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
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

    dataset: DatasetRef = Field(
        description="digits | fashion-mnist | synthetic[:k=v,...] | a folder or .npz file "
        "inside the server's data roots",
    )
    space: str = Field("default", max_length=100, description="a packaged search space name")
    spec: dict[str, Any] | None = Field(
        None, description="an inline search space (the YAML file's content as JSON)"
    )

    _bare_dataset = field_validator("dataset", mode="before")(as_root_relative)

    @model_validator(mode="after")
    def _one_space(self) -> StudyCreate:
        if self.spec is not None and "space" in self.model_fields_set:
            raise ValueError(
                "send either space (a packaged search space name) or spec (a search space "
                "inline), not both"
            )
        return self


class Progress(BaseModel):
    requested: int | None = None
    finished: int = 0
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    waiting: int = 0
    skipped: int = 0  # queued configurations the search ended before running


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


class ModelPublic(BaseModel):
    """The chosen trial's kept weights (its best epoch) and where to download them."""

    trial: int
    score: float = Field(description="the chosen trial's validation score of the study's metric")
    metric: str = Field(description="what score measures: the space's objective")
    weights: str = Field(description="GET: the state dict (torch.save), as trained")
    config: str = Field(description="GET: the trial's whole training configuration (JSON)")


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
    metric: str = Field(
        "accuracy", description="what best_value and the trials' values measure (the objective)"
    )
    chosen_class_report: dict[str, Any] | None = Field(
        None,
        description="the chosen trial's per-class precision, recall, support and confusion "
        "matrix (rows: true class) at its best epoch, on the validation split",
    )
    num_blocks: int | None = None
    chosen_backbone: str | None = Field(
        None, description="a space that searches the backbone: the chosen one"
    )
    backbones: list[dict[str, Any]] | None = Field(
        None,
        description="a space that searches the backbone: each one's trials, best value and "
        "inference cost (parameters, macs, latency_ms at input_size)",
    )
    backbone_ranking: list[dict[str, Any]] | None = Field(
        None,
        description="the backbones ranked before any trial by a linear probe of their frozen "
        "features (probe_accuracy, best first), with their inference cost",
    )
    recommendation: dict[str, Any] | None = None
    recommendation_audit: Any = None
    stop_reason: str | None = Field(
        None, description="why the search stopped, in words (settled, budget, trials, timeout)"
    )
    input_size: int | None = Field(None, description="the square input side trials train at")
    metric_why: str | None = Field(
        None,
        description="why the study optimises its metric when none was chosen (skewed "
        "classes: balanced accuracy); null where the user or the space chose it",
    )
    size_decision: dict[str, Any] | None = Field(
        None,
        description="how the input size was decided: chosen, own (the data's), why, and the "
        "feature-extraction probe at each candidate size; null where it was fixed",
    )
    stopped: str | None = Field(
        None,
        description="why the search stopped, as one of settled, budget, trials, timeout, "
        "failing (autotransfer.record.Stop)",
    )
    model: ModelPublic | None = None
    test: dict[str, Any] | None = Field(
        None,
        description="the kept model scored once on the test split the search never saw: "
        "metric, score, accuracy, every metric, images, class_report, source (or error)",
    )
    study_missing: bool = Field(
        False,
        description="the job ran, but its Optuna study is gone from the storage (deleted in "
        "optuna-dashboard or by hand): its trials and decision are lost",
    )


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
