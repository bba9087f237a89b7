"""What a search is asked to do: data, backbone, search space, storage and workers."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from autotransfer.search._storage import DEFAULT_STORAGE
from autotransfer.spec import SearchSpec, load_spec


class SearchRequest(BaseModel):
    """A study's inputs. Budget fields left ``None`` keep the search space's own budget."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = "digits"
    val_fraction: float = Field(0.2, gt=0, lt=1)
    max_train: int | None = Field(None, ge=2)
    max_val: int | None = Field(None, ge=2)
    on_corrupt: Literal["skip", "error"] = "skip"
    backbone: str = "efficientnet_lite0"
    weights: str = "DEFAULT"
    space: str = "default"
    trials: int | None = Field(None, ge=1, le=100_000)
    timeout_s: float | None = Field(None, gt=0)
    max_epochs: int | None = Field(None, ge=1, le=1000)
    seed: int | None = None
    split_seed: int | None = Field(
        None,
        ge=0,
        description="seed of the train/validation split; None: the study's seed. Repeating "
        "a search with other seeds on one fixed validation set sets this",
    )
    storage: str = DEFAULT_STORAGE
    study_name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:-]{1,200}$")
    workers: int = Field(1, ge=1, le=64)
    input_size: int | None = Field(None, ge=8, le=4096)
    device: str = "auto"
    threads: int | None = Field(None, ge=1, le=512)
    heartbeat_interval: int = Field(10, ge=1)
    grace_period: int = Field(60, ge=2)
    recommend: bool = Field(True, description="seed the first trials with the recommender")
    backend: Literal["optuna", "ray"] = "optuna"
    cache: bool = Field(True, description="reuse frozen-prefix features across trials")
    cache_dir: str | None = Field(
        None,
        description="feature cache folder; None: beside a SQLite/journal storage file "
        "(study.db → study-features/), else ~/.cache/autotransfer/features",
    )
    ray_address: str | None = Field(
        None, description="an existing Ray cluster ('auto', 'ray://host:port'); None starts one"
    )
    gpus_per_trial: float = Field(
        0.0, ge=0, le=64, description="Ray backend: GPUs each trial reserves (0.5 shares one)"
    )
    max_concurrent_trials: int | None = Field(
        None, ge=1, le=10_000, description="Ray backend: trials at once (None: as resources allow)"
    )

    def resolved_spec(self) -> SearchSpec:
        """The search space with this request's budget overrides applied."""
        spec = load_spec(self.space)
        updates = {
            key: value
            for key, value in (
                ("trials", self.trials),
                ("timeout_s", self.timeout_s),
                ("max_epochs", self.max_epochs),
                ("seed", self.seed),
            )
            if value is not None
        }
        if "max_epochs" in updates:
            updates["min_epochs"] = min(spec.budget.min_epochs, updates["max_epochs"])
        budget = spec.budget.model_validate({**spec.budget.model_dump(), **updates})
        return spec.model_copy(update={"budget": budget})

    def resolved_split_seed(self) -> int:
        """The split's seed: ``split_seed``, else the study's seed (the space's by default)."""
        return self.split_seed if self.split_seed is not None else self.resolved_spec().budget.seed

    def resolved_study_name(self) -> str:
        if self.study_name:
            return self.study_name
        data = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.dataset.rstrip("/").split("/")[-1])[:60]
        space = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.space.split("/")[-1].removesuffix(".yaml"))
        return f"{data}-{self.backbone}-{space}"
