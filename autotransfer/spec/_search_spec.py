"""The whole search space of a study: parameters, fixed values and budget."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from autotransfer.finetune import TrialConfig
from autotransfer.spec._budget import Budget
from autotransfer.spec._params import DepthParam, ParamSpec

# Fields a study fixes itself: the backbone/data/device are the study's, epochs its budget's.
_NOT_SEARCHABLE = {"backbone", "weights", "epochs", "seed", "device", "num_workers", "input_size"}
SEARCHABLE = sorted(set(TrialConfig.model_fields) - _NOT_SEARCHABLE)


class SearchSpec(BaseModel):
    """A declarative search space; one file works for any backbone (see ``DepthParam``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    parameters: dict[str, ParamSpec]
    fixed: dict[str, Any] = Field(default_factory=dict)
    budget: Budget = Budget()

    @model_validator(mode="after")
    def _names(self) -> SearchSpec:
        for where, names in (("parameters", self.parameters), ("fixed", self.fixed)):
            unknown = sorted(set(names) - set(SEARCHABLE))
            if unknown:
                raise ValueError(
                    f"unknown {where} {unknown}: searchable fields are {', '.join(SEARCHABLE)}"
                )
        both = sorted(set(self.parameters) & set(self.fixed))
        if both:
            raise ValueError(f"{both} are both searched and fixed; keep one")
        if "freeze_depth" in self.parameters and not isinstance(
            self.parameters["freeze_depth"], DepthParam
        ):
            raise ValueError("freeze_depth must use type: depth (a fraction range or block counts)")
        seen: list[str] = []
        for name, param in self.parameters.items():
            for other in param.when or {}:
                if other not in seen:
                    raise ValueError(
                        f"{name}.when refers to {other!r}, which must be a parameter listed "
                        f"before {name}"
                    )
            seen.append(name)
        # the fixed values must themselves be valid trial settings
        TrialConfig(**{**self.fixed, "epochs": self.budget.max_epochs})
        return self
