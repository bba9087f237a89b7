"""The whole search space of a study: parameters, fixed values and budget."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from autotransfer.backbones import list_backbones
from autotransfer.finetune import TrialConfig
from autotransfer.space._budget import Budget
from autotransfer.space._params import CategoricalParam, DepthParam, ParamSpec

# Fields a study fixes itself: the data/device are the study's, epochs its budget's. The
# backbone is the study's unless the space searches it (a categorical over registered names).
_NOT_SEARCHABLE = {"weights", "epochs", "seed", "device", "num_workers", "input_size"}
SEARCHABLE = sorted(set(TrialConfig.model_fields) - _NOT_SEARCHABLE)
_LISTED = 10  # names of a user's that a message lists before it counts the rest


def _few(names: list[Any]) -> str:
    """``['a', 'b']``, or the first ``_LISTED`` names and how many more (a space with
    thousands of unknown names gets a message of a few lines, not of 200 kB)."""
    shown = ", ".join(repr(str(n)[:40]) for n in names[:_LISTED])
    more = f", … and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
    return f"[{shown}{more}]"


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
                    f"unknown {where} {_few(unknown)}: searchable fields are "
                    f"{', '.join(SEARCHABLE)}"
                )
        both = sorted(set(self.parameters) & set(self.fixed))
        if both:
            raise ValueError(f"{both} are both searched and fixed; keep one")
        if "backbone" in self.fixed:
            raise ValueError(
                "backbone cannot be fixed in a space: it is the study's (--backbone), or "
                "searched as parameters.backbone: {type: categorical, choices: [...]}"
            )
        if "backbone" in self.parameters:
            self._check_backbones()
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

    def _check_backbones(self) -> None:
        param = self.parameters["backbone"]
        if not isinstance(param, CategoricalParam) or param.when:
            raise ValueError(
                "parameters.backbone must be {type: categorical, choices: [names]} without "
                "when: (run `autotransfer backbones` for the names)"
            )
        known = list_backbones()
        unknown = [c for c in param.choices if c not in known]
        if unknown:
            raise ValueError(
                f"parameters.backbone: unknown backbone(s) {_few(unknown)}; the registry's names "
                f"are {', '.join(known)}"
            )
        if next(iter(self.parameters)) != "backbone":
            raise ValueError(
                "parameters.backbone must be listed first: the depth and the other parameters "
                "are sampled for the backbone chosen before them"
            )

    @property
    def backbones(self) -> tuple[str, ...] | None:
        """The backbones this space searches, or None when the study fixes one."""
        param = self.parameters.get("backbone")
        return tuple(str(c) for c in param.choices) if isinstance(param, CategoricalParam) else None
