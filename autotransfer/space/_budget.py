"""How much a study may spend and how it samples and prunes."""

from __future__ import annotations

from typing import Annotated, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, model_validator

from autotransfer.finetune import Metric


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class HyperbandPruner(_Strict):
    type: Literal["hyperband"] = "hyperband"
    reduction_factor: int = Field(3, ge=2)


class SuccessiveHalvingPruner(_Strict):
    type: Literal["successive_halving"]
    reduction_factor: int = Field(3, ge=2)
    min_early_stopping_rate: int = Field(0, ge=0)


class MedianPruner(_Strict):
    type: Literal["median"]
    n_startup_trials: int = Field(5, ge=0)
    n_warmup_steps: int = Field(1, ge=0, description="epochs before a trial can be pruned")


class NoPruner(_Strict):
    type: Literal["none"]


class DecisionPrunerSettings(_Strict):
    """Stop a trial once it cannot change the decision (``autotransfer.search``'s engine)."""

    type: Literal["decision"]


PrunerSpec = Annotated[
    HyperbandPruner | SuccessiveHalvingPruner | MedianPruner | NoPruner | DecisionPrunerSettings,
    Field(discriminator="type"),
]


class TPESampler(_Strict):
    type: Literal["tpe"] = "tpe"
    multivariate: bool = True
    n_startup_trials: int = Field(8, ge=0)


class RandomSampler(_Strict):
    type: Literal["random"]


class GPSampler(_Strict):
    type: Literal["gp"]
    n_startup_trials: int = Field(8, ge=0)


class QMCSampler(_Strict):
    type: Literal["qmc"]
    qmc_type: Literal["sobol", "halton"] = "sobol"


SamplerSpec = Annotated[
    TPESampler | RandomSampler | GPSampler | QMCSampler, Field(discriminator="type")
]


# a metric of ``finetune.Metric`` (the one vocabulary), alone or with ``_and_cost`` (a Pareto
# front that also minimises cost); tests/test_space.py checks the two lists agree
Objective = Literal[
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "auroc",
    "auroc_ovr",
    "accuracy_and_cost",
    "balanced_accuracy_and_cost",
    "macro_f1_and_cost",
    "auroc_and_cost",
    "auroc_ovr_and_cost",
]


class Budget(_Strict):
    """Trials, time and epochs of a study, and its sampler, pruner and objective."""

    trials: int = Field(20, ge=1, le=100_000)
    timeout_s: float | None = Field(None, gt=0)
    max_epochs: int = Field(6, ge=1, le=1000)
    min_epochs: int = Field(1, ge=1, description="epochs before the pruner may stop a trial")
    pruner: PrunerSpec = HyperbandPruner()
    sampler: SamplerSpec = TPESampler()
    objective: Objective | None = Field(
        None,
        description="the validation metric the search maximises (accuracy, balanced_accuracy, "
        "macro_f1, auroc for two classes, auroc_ovr); METRIC_and_cost also minimises "
        "training seconds (a Pareto front); unset: accuracy, or balanced_accuracy when the "
        "data's classes are skewed (the search decides when it is prepared)",
    )
    seed: int = 0
    stop: Literal["trials", "settled"] = Field(
        "trials",
        description="trials: run until `trials` have finished; settled: stop once the "
        "decision has not changed over `patience` finished trials (`trials` stays a cap)",
    )
    patience: int = Field(4, ge=1, description="settled: finished trials that must leave it")
    policy: Literal["sample", "procedure"] = Field(
        "sample",
        description="sample: the first configurations (the recommender's seeds) are enqueued, "
        "the sampler draws the rest; procedure: feature extraction as a baseline, the first "
        "configuration, then unfreezing from the top while a step gains, then refinement "
        "(search/_climb.py), the sampler only after the procedure is done",
    )
    budget_runs: float | None = Field(
        None,
        gt=0,
        description="settled: start no trial once one more training run would take the "
        "search's wall time past this many runs; a run is a fine-tune (freeze_depth > 0): "
        "the procedure's start when it fine-tunes, else the longest complete one; never a "
        "linear probe; None: no cap",
    )
    tolerance: float = Field(
        0.005, ge=0, le=1, description="accuracy a cheaper choice may give up (0.005: half a point)"
    )

    @model_validator(mode="after")
    def _epochs(self) -> Budget:
        if self.min_epochs > self.max_epochs:
            raise ValueError(
                f"min_epochs must be <= max_epochs, but got min_epochs={self.min_epochs}, "
                f"max_epochs={self.max_epochs}"
            )
        if self.multi_objective and not isinstance(self.pruner, NoPruner):
            raise ValueError(
                f"Optuna cannot prune multi-objective studies: with objective {self.objective} "
                "set pruner: {type: none}"
            )
        return self

    @property
    def metric(self) -> Metric:
        """The validation metric of the objective (``macro_f1`` for ``macro_f1_and_cost``)."""
        return cast(Metric, (self.objective or "accuracy").removesuffix("_and_cost"))

    @property
    def multi_objective(self) -> bool:
        """Whether the objective also minimises training time (a Pareto front)."""
        return bool(self.objective and self.objective.endswith("_and_cost"))
