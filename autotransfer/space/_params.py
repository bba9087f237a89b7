"""One searchable parameter: its type, bounds and the condition under which it is searched."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from autotransfer.backbones import depth_of_fraction

Scalar = bool | int | float | str


class _Param(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    when: dict[str, Scalar] | None = Field(
        None, description="search this parameter only when earlier parameters have these values"
    )


class FloatParam(_Param):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _bounds(self) -> FloatParam:
        if self.low > self.high:
            raise ValueError(f"low must be <= high, but got low={self.low}, high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scale range needs low > 0, but got low={self.low}")
        if self.log and self.step is not None:
            raise ValueError("step and log cannot be combined; drop one of them")
        return self


class IntParam(_Param):
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _bounds(self) -> IntParam:
        if self.low > self.high:
            raise ValueError(f"low must be <= high, but got low={self.low}, high={self.high}")
        if self.log and (self.low < 1 or self.step != 1):
            raise ValueError("a log-scale int range needs low >= 1 and step 1")
        return self


class CategoricalParam(_Param):
    type: Literal["categorical"]
    choices: list[Scalar] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> CategoricalParam:
        if len({repr(c) for c in self.choices}) != len(self.choices):
            raise ValueError(f"choices must be unique, but got {self.choices}")
        return self


class BoolParam(_Param):
    type: Literal["bool"]


class DepthParam(_Param):
    """Freeze depth that fits any backbone: a fraction range of its blocks, or block counts.

    ``fraction: [0, 0.5]`` searches k = 0 … 0.5·n for a backbone of n blocks (rounded half up,
    as the recommender rounds: ``backbones.depth_of_fraction``);
    ``blocks: [0, 1, 2, 4, all]`` searches those counts (clipped to n, ``all`` = n).
    """

    type: Literal["depth"]
    fraction: tuple[float, float] | None = None
    blocks: list[int | Literal["all"]] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> DepthParam:
        if (self.fraction is None) == (self.blocks is None):
            raise ValueError("give exactly one of fraction: [low, high] or blocks: [k, ...]")
        if self.fraction is not None:
            low, high = self.fraction
            if not 0.0 <= low <= high <= 1.0:
                raise ValueError(
                    f"fraction must satisfy 0 <= low <= high <= 1, but got {low}, {high}"
                )
        if self.blocks is not None:
            if not self.blocks:
                raise ValueError("blocks must list at least one block count")
            bad = [b for b in self.blocks if isinstance(b, int) and b < 0]
            if bad:
                raise ValueError(f"block counts must be >= 0, but got {bad}")
        return self

    def depths(self, num_blocks: int) -> list[int]:
        """The concrete depths for a backbone with ``num_blocks`` blocks, ascending."""
        if self.fraction is not None:
            low, high = self.fraction
            first, last = (depth_of_fraction(f, num_blocks) for f in (low, high))
            return list(range(first, last + 1))
        assert self.blocks is not None
        return sorted({num_blocks if b == "all" else min(b, num_blocks) for b in self.blocks})


ParamSpec = Annotated[
    FloatParam | IntParam | CategoricalParam | BoolParam | DepthParam,
    Field(discriminator="type"),
]
