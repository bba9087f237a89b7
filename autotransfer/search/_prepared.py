"""What every backend needs before the first trial: the validated request, spec and data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autotransfer import record
from autotransfer.backbones import create_backbone, num_blocks, suggest_input_size
from autotransfer.data import TransferDataset, load_dataset
from autotransfer.finetune import TrialConfig, check_metric
from autotransfer.search._request import SearchRequest
from autotransfer.search._trial import trial_config
from autotransfer.spec import SearchSpec


@dataclass(frozen=True)
class Seed:
    """A configuration to try first, with where it came from (shown on the trial)."""

    params: dict[str, Any]
    source: str = record.RECOMMENDER


@dataclass
class PreparedSearch:
    """A request with everything resolved: ``request.spec`` holds the space as values."""

    request: SearchRequest
    spec: SearchSpec  # with the request's budget overrides applied
    dataset: TransferDataset
    num_blocks: int
    input_size: int
    study_name: str

    def trial_config(self, params: dict[str, Any]) -> TrialConfig:
        """The training configuration of sampled ``params``, as every trial of this search,
        its export, its test score and its estimate train it."""
        request = self.request
        return trial_config(
            self.spec,
            params,
            backbone=request.backbone,
            weights=request.weights,
            input_size=self.input_size,
            seed=self.spec.budget.seed,
            device=request.device,
        )


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


def prepare(request: SearchRequest) -> PreparedSearch:
    """Validate everything a worker needs before any trial starts (fail fast, lose nothing).

    The search space is read here, once: the prepared request carries it as values to
    every worker process and Ray node.
    """
    request = request.with_spec()
    spec = request.resolved_spec()
    dataset = load_request_dataset(request)
    check_metric(spec.budget.metric, len(dataset.class_names))
    blocks = num_blocks(request.backbone)
    size = request.input_size or suggest_input_size(
        request.backbone, dataset.profile().median_resolution
    )
    # builds the network once with the real weights, so a missing weight file or an invalid
    # input size is reported now rather than as N failed trials
    create_backbone(
        request.backbone,
        num_classes=max(2, len(dataset.class_names)),
        weights=request.weights,
        input_size=size,
    )
    return PreparedSearch(request, spec, dataset, blocks, size, request.resolved_study_name())
