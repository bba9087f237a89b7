"""The search plan: everything a search decided before its first trial, as values.

``prepare`` builds it once, in the process that runs the search: it reads the search space,
loads the data, checks the metric and builds every backbone once with its real weights, so
that a missing weight file or an impossible input size is reported now rather than as N
failed trials. The plan (:class:`SearchPlan`) is frozen and JSON-serialisable; Optuna worker
processes and Ray nodes receive it as it is and load the data themselves from its reference
(checked against the plan's fingerprint), without preparing again. ``SearchPlan.trial_config``
is the one place a trial's training configuration is built from sampled parameters.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial
from pydantic import BaseModel, ConfigDict

from autotransfer import record
from autotransfer.backbones import (
    InferenceCost,
    create_backbone,
    inference_cost,
    num_blocks,
    suggest_input_size,
)
from autotransfer.data import TransferDataset, load_dataset
from autotransfer.finetune import TrialConfig, check_metric, resolve_device
from autotransfer.search._request import SearchRequest
from autotransfer.space import Blocks, SearchSpec


@dataclass(frozen=True)
class Seed:
    """A configuration to try first, with where it came from (shown on the trial)."""

    params: dict[str, Any]
    source: str = record.RECOMMENDER


class Trained(BaseModel):
    """One backbone a search trains: its block count and the input size it trains at."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    blocks: int
    input_size: int


class SearchPlan(BaseModel):
    """A search as values: the request (its space read in), the space with the request's
    budget overrides applied, every backbone it trains with its blocks and input size, the
    data's fingerprint and the study's name. Sent as JSON to every worker and Ray node."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    request: SearchRequest
    spec: SearchSpec
    study_name: str
    fingerprint: str
    # the study's backbone (``request.backbone``): its blocks and input size (the header a
    # resumed study must agree on)
    num_blocks: int
    input_size: int
    # every backbone a trial trains: the space's choices, else the study's one
    trained: dict[str, Trained]
    # the training split's largest class ÷ its smallest, and why the study optimises its
    # metric when the space left it open (skewed data: balanced accuracy); None: chosen
    skew: float = 1.0
    metric_why: str | None = None

    @property
    def skewed(self) -> bool:
        """Whether the classes are skewed by the recommender's own threshold."""
        from autotransfer.recommend import Thresholds

        return self.skew >= Thresholds().skewed

    @property
    def metric(self) -> str:
        return self.spec.budget.metric

    @property
    def backbones(self) -> tuple[str, ...]:
        """The backbones this search trains: the space's choices, else the study's one."""
        return self.spec.backbones or (self.request.backbone,)

    @property
    def blocks(self) -> Blocks:
        """What depth parameters resolve against (``spec.suggest``, ``fit_to_space``)."""
        if self.spec.backbones:
            return {name: t.blocks for name, t in self.trained.items()}
        return self.num_blocks

    @property
    def sizes(self) -> dict[str, int]:
        """Each trained backbone's input size."""
        return {name: t.input_size for name, t in self.trained.items()}

    def trial_config(self, params: dict[str, Any]) -> TrialConfig:
        """The training configuration of sampled ``params`` (``backbone`` among them when the
        space searches it): the space's fixed values, then the sampled ones, then the study's
        own (backbone and its input size, weights, epochs, metric, seed, device)."""
        backbone = str(params.get("backbone", self.request.backbone))
        values: dict[str, Any] = {
            **self.spec.fixed,
            **{k: v for k, v in params.items() if k != "backbone"},
        }
        if values.get("lp_ft_epochs") and values.get("freeze_depth", 0) == 0:
            values["lp_ft_epochs"] = 0  # at depth 0 the whole run already is the linear probe
        return TrialConfig(
            **values,
            metric=self.spec.budget.metric,
            backbone=backbone,
            weights=self.request.weights,
            epochs=self.spec.budget.max_epochs,
            input_size=self.trained[backbone].input_size,
            seed=self.spec.budget.seed,
            device=self.request.device,
        )

    def load_dataset(self) -> TransferDataset:
        """The plan's data, loaded here exactly as ``prepare`` loaded it, or an error when
        this machine sees other data under the same reference."""
        dataset = load_request_dataset(self.request)
        if dataset.fingerprint != self.fingerprint:
            import socket

            raise RuntimeError(
                f"{socket.gethostname()} sees other data for {self.request.dataset} "
                f"(fingerprint {dataset.fingerprint}, the study has {self.fingerprint}); give "
                "every machine the same files at the same path"
            )
        return dataset


@functools.lru_cache(maxsize=2)
def plan_from_json(plan_json: str) -> SearchPlan:
    """A plan received as JSON (a worker process, a Ray trial), parsed once per process."""
    return SearchPlan.model_validate_json(plan_json)


@dataclass(frozen=True)
class PreparedSearch:
    """A plan with its data loaded, in one process: what the engine runs."""

    plan: SearchPlan
    dataset: TransferDataset

    @property
    def request(self) -> SearchRequest:
        return self.plan.request

    @property
    def spec(self) -> SearchSpec:
        return self.plan.spec

    @property
    def study_name(self) -> str:
        return self.plan.study_name

    @property
    def num_blocks(self) -> int:
        return self.plan.num_blocks

    @property
    def input_size(self) -> int:
        return self.plan.input_size

    @property
    def backbone_blocks(self) -> dict[str, int]:
        return {name: t.blocks for name, t in self.plan.trained.items()}

    @property
    def backbones(self) -> tuple[str, ...]:
        return self.plan.backbones

    @property
    def blocks(self) -> Blocks:
        return self.plan.blocks

    @property
    def sizes(self) -> dict[str, int]:
        return self.plan.sizes

    def trial_config(self, params: dict[str, Any]) -> TrialConfig:
        return self.plan.trial_config(params)

    def config_of(self, trial: FrozenTrial) -> TrialConfig:
        """The configuration ``trial`` trained with, as it stored it when it started (built
        from the plan only for a trial stored before trials recorded it)."""
        stored = record.read_trial(trial).config
        return TrialConfig(**stored) if stored else self.trial_config(dict(trial.params))

    def inference(self, config: TrialConfig) -> InferenceCost:
        """What ``config``'s network costs to run once trained, on the search's device
        (measured once per backbone and input size in this process)."""
        classes = max(2, len(self.dataset.class_names))
        device = str(resolve_device(self.request.device))
        return inference_cost(config.backbone, classes, config.input_size, device)


def load_request_dataset(request: SearchRequest) -> TransferDataset:
    """The request's dataset, split and subset exactly as every worker of the study sees it."""
    return load_dataset(
        request.dataset,
        val_fraction=request.val_fraction,
        seed=request.resolved_split_seed(),
        max_train=request.max_train,
        max_val=request.max_val,
        on_corrupt=request.on_corrupt,
        test_fraction=request.test_fraction,
    )


def _follow_skew(
    spec: SearchSpec, dataset: TransferDataset
) -> tuple[SearchSpec, float, str | None]:
    """The space with its objective decided where it left it open: balanced accuracy when the
    training classes are skewed (the recommender's threshold), else accuracy; the skew; and
    the sentence that says so (None when the space or the user chose the metric)."""
    from autotransfer.recommend import Thresholds

    counts = sorted(dataset.profile().train_class_counts.values())
    skew = counts[-1] / max(counts[0], 1) if counts else 1.0
    if spec.budget.objective is not None:
        return spec, skew, None
    threshold = Thresholds().skewed
    if skew >= threshold:
        objective, why = (
            "balanced_accuracy",
            f"optimising balanced accuracy: the classes are skewed (the largest has "
            f"{counts[-1]:,} training images, the smallest {counts[0]:,}: {skew:.1f}×, "
            f">= {threshold:g}×), where accuracy rewards predicting the large ones; "
            "--objective accuracy to optimise plain accuracy",
        )
    else:
        objective, why = "accuracy", None
    budget = spec.budget.model_copy(update={"objective": objective})
    return spec.model_copy(update={"budget": budget}), skew, why


def prepare(request: SearchRequest) -> PreparedSearch:
    """Validate everything before any trial starts (fail fast, lose nothing) and build the
    plan; see the module docstring."""
    request = request.with_spec()
    spec = request.resolved_spec()
    dataset = load_request_dataset(request)
    spec, skew, metric_why = _follow_skew(spec, dataset)
    check_metric(spec.budget.metric, len(dataset.class_names))
    resolution = dataset.profile().median_resolution
    size = request.input_size or suggest_input_size(request.backbone, resolution)
    trained: dict[str, Trained] = {}
    for backbone in spec.backbones or (request.backbone,):
        # each searched backbone at its own resolution, up to the data's (unless fixed)
        own = request.input_size or (
            suggest_input_size(backbone, resolution, cap=None) if spec.backbones else size
        )
        create_backbone(
            backbone,
            num_classes=max(2, len(dataset.class_names)),
            weights=request.weights,
            input_size=own,
        )
        trained[backbone] = Trained(blocks=num_blocks(backbone), input_size=own)
    plan = SearchPlan(
        request=request,
        spec=spec,
        study_name=request.resolved_study_name(),
        fingerprint=dataset.fingerprint,
        num_blocks=num_blocks(request.backbone),
        input_size=size,
        trained=trained,
        skew=skew,
        metric_why=metric_why,
    )
    return PreparedSearch(plan, dataset)
