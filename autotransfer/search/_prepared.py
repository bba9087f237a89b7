"""What every backend needs before the first trial: the validated request, spec and data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
from autotransfer.search._trial import trial_config
from autotransfer.spec import Blocks, SearchSpec


@dataclass(frozen=True)
class Seed:
    """A configuration to try first, with where it came from (shown on the trial)."""

    params: dict[str, Any]
    source: str = record.RECOMMENDER


@dataclass
class PreparedSearch:
    """A request with everything resolved: ``request.spec`` holds the space as values.

    ``num_blocks`` and ``input_size`` are the study's backbone's (``request.backbone``);
    a space that searches the backbone has every searched backbone's in ``blocks`` and
    ``input_sizes`` too, and a trial trains its own (``trial_config``).
    """

    request: SearchRequest
    spec: SearchSpec  # with the request's budget overrides applied
    dataset: TransferDataset
    num_blocks: int
    input_size: int
    study_name: str
    backbone_blocks: dict[str, int] = field(default_factory=dict)
    input_sizes: dict[str, int] = field(default_factory=dict)

    @property
    def backbones(self) -> tuple[str, ...]:
        """The backbones this search trains: the space's choices, else the study's one."""
        return self.spec.backbones or (self.request.backbone,)

    @property
    def blocks(self) -> Blocks:
        """What depth parameters resolve against (``spec.suggest``, ``fit_to_space``)."""
        return dict(self.backbone_blocks) if self.spec.backbones else self.num_blocks

    def trial_config(self, params: dict[str, Any]) -> TrialConfig:
        """The training configuration of sampled ``params``, as every trial of this search,
        its export, its test score and its estimate train it."""
        return request_trial_config(self.request, self.spec, self.sizes, params)

    def inference(self, config: TrialConfig) -> InferenceCost:
        """What ``config``'s network costs to run once trained, on the search's device
        (measured once per backbone and input size in this process)."""
        classes = max(2, len(self.dataset.class_names))
        device = str(resolve_device(self.request.device))
        return inference_cost(config.backbone, classes, config.input_size, device)

    @property
    def sizes(self) -> dict[str, int]:
        """Each trained backbone's input size."""
        return self.input_sizes or {self.request.backbone: self.input_size}


def request_trial_config(
    request: SearchRequest, spec: SearchSpec, input_sizes: dict[str, int], params: dict[str, Any]
) -> TrialConfig:
    """``params`` (sampled, ``backbone`` among them when the space searches it) as the trial
    trains them: on its backbone, at that backbone's input size (``input_sizes``)."""
    backbone = str(params.get("backbone", request.backbone))
    return trial_config(
        spec,
        {k: v for k, v in params.items() if k != "backbone"},
        backbone=backbone,
        weights=request.weights,
        input_size=input_sizes[backbone],
        seed=spec.budget.seed,
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
    resolution = dataset.profile().median_resolution
    blocks = num_blocks(request.backbone)
    size = request.input_size or suggest_input_size(request.backbone, resolution)
    sizes: dict[str, int] = {}
    for backbone in spec.backbones or (request.backbone,):
        # each searched backbone at its own resolution, up to the data's (unless fixed)
        sizes[backbone] = request.input_size or (
            suggest_input_size(backbone, resolution, cap=None) if spec.backbones else size
        )
        # builds each network once with the real weights, so a missing weight file or an
        # invalid input size is reported now rather than as N failed trials
        create_backbone(
            backbone,
            num_classes=max(2, len(dataset.class_names)),
            weights=request.weights,
            input_size=sizes[backbone],
        )
    return PreparedSearch(
        request,
        spec,
        dataset,
        blocks,
        size,
        request.resolved_study_name(),
        backbone_blocks={b: num_blocks(b) for b in sizes},
        input_sizes=sizes,
    )
