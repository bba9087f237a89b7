"""What a search is asked to do: ``SearchOptions`` (the user's choices, shared by the CLI and
the HTTP API) and ``SearchRequest`` (those plus where and how it runs)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from autotransfer.cache import (
    DEFAULT_DISK_BYTES,
    DEFAULT_MEMORY_BYTES,
    FeatureCache,
    GiB,
    make_cache,
)
from autotransfer.data import DatasetRef
from autotransfer.finetune import TrialConfig, Weighting
from autotransfer.search._backends import BACKENDS
from autotransfer.space import Objective, SearchSpec, load_spec
from autotransfer.storage import DEFAULT_STORAGE, StorageURL

_NAME = r"^[A-Za-z0-9_.:-]{1,200}$"


def _number(text: str) -> int | float | bool | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_start(text: str) -> dict[str, Any]:
    """``freeze_depth=0,base_lr=0.01`` as parameters; names must be trial settings.

    >>> parse_start("freeze_depth=0, base_lr=0.01,optimizer=sgd")
    {'freeze_depth': 0, 'base_lr': 0.01, 'optimizer': 'sgd'}
    """
    known = set(TrialConfig.model_fields) - {"backbone", "weights", "input_size", "device"}
    params: dict[str, Any] = {}
    for pair in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, value = (part.strip() for part in pair.partition("="))
        if not sep or not name or not value:
            raise ValueError(
                f"start must be name=value pairs separated by commas, e.g. "
                f"freeze_depth=0,base_lr=0.01, but got {pair!r}"
            )
        if name not in known:
            raise ValueError(
                f"start names {name!r}, which is not a trial setting; use one of "
                f"{', '.join(sorted(known))}"
            )
        params[name] = _number(value)
    if not params:
        raise ValueError("start is empty; give e.g. freeze_depth=0,base_lr=0.01")
    TrialConfig(**{k: v for k, v in params.items() if k != "epochs"})  # values in range
    return params


class SearchOptions(BaseModel):
    """A user's choices for one search: data, backbone, search space, budget, seeding.

    ``autotransfer search`` takes these fields as its options and ``POST /v1/studies`` as its
    body (plus an inline ``spec``), so both accept and check exactly the same things. Counts
    are strict: ``"trials": "3"`` or ``true`` is refused, not read as a number. Budget fields
    left ``None`` keep the search space's own budget.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: DatasetRef = Field(
        DatasetRef.parse("digits"),
        description="digits | fashion-mnist[:DIR] | synthetic[:k=v,...] | an image folder | "
        "a .npz file",
    )
    val_fraction: float = Field(0.2, gt=0, lt=1, description="validation share of the data")
    max_train: int | None = Field(
        None, ge=2, le=10_000_000, strict=True, description="keep a stratified subset"
    )
    max_val: int | None = Field(
        None, ge=2, le=10_000_000, strict=True, description="keep a stratified subset"
    )
    on_corrupt: Literal["skip", "error"] = Field(
        "skip", description="unreadable image files: skip them (listed) or stop"
    )
    test_fraction: float | None = Field(
        None,
        gt=0,
        le=0.5,
        description="hold out this stratified share of the training split as a test split "
        "the search never sees (a test/ folder or x_test, y_test need none)",
    )
    backbone: str = Field("efficientnet_lite0", max_length=100, description="registered name")
    weights: str = Field(
        "DEFAULT",
        max_length=1000,
        description="DEFAULT, none, a torchvision weight name, or a state-dict file",
    )
    space: str = Field(
        "default", max_length=1000, description="packaged search space name or a YAML path"
    )
    trials: int | None = Field(
        None, ge=1, le=100_000, strict=True, description="finished trials to reach"
    )
    timeout_s: float | None = Field(
        None,
        gt=0,
        le=365 * 86400,
        strict=True,
        allow_inf_nan=False,
        description="seconds; no new trial starts after it",
    )
    max_epochs: int | None = Field(
        None, ge=1, le=1000, strict=True, description="epochs of a trial that is not stopped"
    )
    stop: Literal["trials", "settled"] | None = Field(
        None,
        description="settled: stop once the decision is settled (the packaged spaces); "
        "trials: run until --trials have finished; default: the space's",
    )
    objective: Objective | None = Field(
        None,
        description="the validation metric to maximise (accuracy, balanced_accuracy, "
        "macro_f1, auroc, auroc_ovr; METRIC_and_cost also minimises cost); default: the "
        "space's, and on skewed classes balanced_accuracy",
    )
    class_weighting: Weighting | None = Field(
        None,
        description="fix the loss's class weights (none, sqrt_inverse, inverse) instead of "
        "letting the search try them on skewed classes",
    )
    balanced_sampler: bool | None = Field(
        None,
        description="fix whether training draws every class equally often instead of "
        "letting the search try it on skewed classes",
    )
    policy: Literal["sample", "procedure"] | None = Field(
        None,
        description="procedure: feature extraction, the first configuration, unfreezing from "
        "the top while it gains, then refinement; sample: the seeds, then the sampler; "
        "default: the space's (procedure in the packaged single-backbone spaces)",
    )
    budget_runs: float | None = Field(
        None,
        gt=0,
        le=1000,
        allow_inf_nan=False,
        description="settled: most wall time to spend, in training runs of a fine-tune (the "
        "procedure's start when it fine-tunes, else the longest complete trial with "
        "freeze_depth > 0); default: the space's (2.5 in the packaged spaces)",
    )
    seed: int | None = Field(
        None,
        ge=0,
        le=2**31 - 1,
        strict=True,
        description="sampler, training and (by default) split seed",
    )
    split_seed: int | None = Field(
        None,
        ge=0,
        le=2**31 - 1,
        strict=True,
        description="seed of the train/validation split (default: the study's seed); "
        "repeating a search with other seeds on one fixed validation set sets this",
    )
    input_size: int | None = Field(
        None,
        ge=8,
        le=4096,
        strict=True,
        description="square input side (default: from the data's resolution)",
    )
    recommend: bool = Field(True, description="seed the first trials with the recommender")
    start: str | None = Field(
        None,
        max_length=1000,
        description="the first configuration instead of the recommender's, as "
        "name=value pairs: freeze_depth=0,base_lr=0.01 (the procedure climbs from it)",
    )
    cache: bool = Field(
        True,
        description="reuse frozen-prefix features across trials; false trains every epoch "
        "through the whole backbone",
    )
    backend: str = Field(
        "optuna",
        description="optuna (worker processes on this machine) or ray (a Ray Tune cluster)",
        json_schema_extra={"enum": list(BACKENDS)},
    )
    study_name: str | None = Field(None, pattern=_NAME, description="default: data-backbone-space")

    @field_validator("start")
    @classmethod
    def _start_pairs(cls, value: str | None) -> str | None:
        if value is not None:
            parse_start(value)
        return value

    def start_params(self) -> dict[str, Any] | None:
        """``start`` as parameters (None when not given)."""
        return parse_start(self.start) if self.start is not None else None

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, but got {value!r}")
        return value


class SearchRequest(SearchOptions):
    """A study's inputs: the user's options plus storage, workers, devices and the spec itself.

    ``spec`` is the search space as values (``prepare`` fills it from ``space`` when it is
    ``None``), so a request sent to another process or Ray node never re-reads a file.
    """

    spec: SearchSpec | None = Field(
        None, description="the search space itself; None: load `space` when prepared"
    )
    storage: StorageURL = Field(
        StorageURL.parse(DEFAULT_STORAGE),
        description="sqlite:///file.db, postgresql+psycopg://…, or journal:///file.log",
    )
    workers: int = Field(1, ge=1, le=64, description="Optuna backend: worker processes")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    threads: int | None = Field(None, ge=1, le=512, description="CPU threads per worker")
    heartbeat_interval: int = Field(
        10, ge=1, description="seconds between a running trial's heartbeats"
    )
    grace_period: int = Field(
        60, ge=2, description="seconds without a heartbeat before a trial counts as dead"
    )
    cache_dir: str | None = Field(
        None,
        description="feature cache folder (default: beside a SQLite/journal storage file, "
        "study.db → study-features/, else ~/.cache/autotransfer/features)",
    )
    cache_memory_gb: float = Field(
        DEFAULT_MEMORY_BYTES / GiB,
        ge=0,
        le=4096,
        description="feature cache: GiB of RAM each worker process may hold feature sets in",
    )
    cache_disk_gb: float = Field(
        DEFAULT_DISK_BYTES / GiB,
        ge=0,
        le=1 << 20,
        description="feature cache: GiB of disk its folder may take; it also always leaves "
        "5% of the disk (at least 1 GiB) free. A feature set that fits neither budget is "
        "skipped (logged) and its trials run the frozen blocks every epoch",
    )
    keep_model: bool = Field(
        True,
        description="keep the chosen trial's weights (best epoch) as an Optuna artifact, so "
        "--export hands over the measured model without retraining",
    )
    artifacts_dir: str | None = Field(
        None,
        description="artifact folder; default: beside a SQLite/journal storage file "
        "(study.db → study-artifacts/), else ./autotransfer-artifacts (on Ray: a folder every "
        "node shares)",
    )
    ray_address: str | None = Field(
        None, description="Ray: an existing cluster (auto, host:port, ray://host:port)"
    )
    gpus_per_trial: float = Field(
        0.0, ge=0, le=64, description="Ray: GPUs each trial reserves (0.5 shares one)"
    )
    max_concurrent_trials: int | None = Field(
        None, ge=1, le=10_000, description="Ray: trials at once (default: as resources allow)"
    )

    @model_validator(mode="before")
    @classmethod
    def _space_of_spec(cls, data: Any) -> Any:
        # a request built from a spec alone is named after it
        if isinstance(data, dict) and data.get("spec") is not None and "space" not in data:
            spec = data["spec"]
            name = spec.name if isinstance(spec, SearchSpec) else spec.get("name")
            if isinstance(name, str):
                data = {**data, "space": name}
        return data

    def with_spec(self) -> SearchRequest:
        """This request with ``spec`` loaded from ``space`` (read once, here)."""
        if self.spec is not None:
            return self
        return self.model_copy(update={"spec": load_spec(self.space)})

    def resolved_spec(self) -> SearchSpec:
        """The search space with this request's budget overrides applied."""
        spec = self.spec if self.spec is not None else load_spec(self.space)
        updates: dict[str, Any] = {
            key: value
            for key, value in (
                ("trials", self.trials),
                ("timeout_s", self.timeout_s),
                ("max_epochs", self.max_epochs),
                ("seed", self.seed),
                ("stop", self.stop),
                ("budget_runs", self.budget_runs),
                ("policy", self.policy),
                ("objective", self.objective),
            )
            if value is not None
        }
        if self.objective is not None and self.objective.endswith("_and_cost"):
            updates["pruner"] = {"type": "none"}  # Optuna cannot prune a Pareto front
        chosen = {
            name: value
            for name, value in (
                ("class_weighting", self.class_weighting),
                ("balanced_sampler", self.balanced_sampler),
            )
            if value is not None
        }
        if chosen:  # fixed by the user: no longer searched
            values = spec.model_dump()
            values["parameters"] = {
                k: v for k, v in values["parameters"].items() if k not in chosen
            }
            values["fixed"] = {**values["fixed"], **chosen}
            spec = SearchSpec.model_validate(values)
        if self.max_epochs is not None:  # trials are judged at the same share of their epochs
            share = spec.budget.min_epochs / spec.budget.max_epochs
            judged = round(share * self.max_epochs + 1e-9)
            updates["min_epochs"] = max(1, min(judged, self.max_epochs))
        budget = spec.budget.model_validate({**spec.budget.model_dump(), **updates})
        return spec.model_copy(update={"budget": budget})

    def feature_cache(
        self, directory: str | None, *, storage: StorageURL | None = None
    ) -> FeatureCache | None:
        """The feature cache in ``directory`` (else beside ``storage``) with this request's
        budgets, or None when ``cache`` is off."""
        return make_cache(
            self.cache,
            directory,
            storage=storage,
            memory_bytes=int(self.cache_memory_gb * GiB),
            disk_bytes=int(self.cache_disk_gb * GiB),
        )

    def resolved_split_seed(self) -> int:
        """The split's seed: ``split_seed``, else the study's seed (the space's by default)."""
        return self.split_seed if self.split_seed is not None else self.resolved_spec().budget.seed

    def resolved_study_name(self) -> str:
        if self.study_name:
            return self.study_name
        text = str(self.dataset)
        data = re.sub(r"[^A-Za-z0-9_.-]+", "_", text.rstrip("/").split("/")[-1])[:60]
        space = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.space.split("/")[-1].removesuffix(".yaml"))
        if self.spec is not None and self.spec.backbones:  # the space names the backbones
            return f"{data}-{space}"
        return f"{data}-{self.backbone}-{space}"
