"""A backbone's forward pass as ordered steps, split at a block boundary into prefix and suffix.

Families declare their forward pass as data (:attr:`BlockLayout.forward`): module paths in
call order, where ``*`` stands for every child of an ``nn.Sequential``/``nn.ModuleList`` in
order, plus the function steps :data:`FLATTEN` and :data:`GLOBAL_POOL`. A
:class:`ForwardPlan` checks that the steps cover every parameter exactly once, that each
step lies inside one block and that blocks only go up along the pass; anything else makes
the plan unavailable (the caller then runs the whole network), never a wrong split.

>>> import torch
>>> from torch import nn
>>> net = nn.Sequential()
>>> net.add_module("stem", nn.Conv2d(3, 4, 3))
>>> net.add_module("body", nn.Sequential(nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3)))
>>> net.add_module("pool", nn.AdaptiveAvgPool2d(1))
>>> net.add_module("fc", nn.Linear(4, 2))
>>> steps = expand_forward(net, ("stem", "body.*", "pool", FLATTEN, "fc"))
>>> [path for path, _ in steps]
['stem', 'body.0', 'body.1', 'body.2', 'pool', '<flatten>', 'fc']
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autotransfer.backbones._layout import HEAD

FLATTEN = "<flatten>"
"""Function step: ``torch.flatten(x, 1)`` (torchvision's functional flatten before the head)."""
GLOBAL_POOL = "<avgpool>"
"""Function step: ``adaptive_avg_pool2d(x, 1)`` (MobileNetV2 pools functionally)."""

Step = tuple[str, Callable[[Tensor], Tensor]]
"""``(path, callable)``: the module at ``path`` (or a function step's name) and how to call it."""


def _flatten(x: Tensor) -> Tensor:
    return torch.flatten(x, 1)


def _global_pool(x: Tensor) -> Tensor:
    return F.adaptive_avg_pool2d(x, 1)


_FUNCTIONS: dict[str, Callable[[Tensor], Tensor]] = {FLATTEN: _flatten, GLOBAL_POOL: _global_pool}


class PlanError(ValueError):
    """A declared forward pass does not fit the network; the caller runs it unsplit."""


def _expand_path(model: nn.Module, path: str) -> list[str]:
    paths = [""]
    for part in path.split("."):
        expanded: list[str] = []
        for parent in paths:
            if part != "*":
                expanded.append(f"{parent}.{part}" if parent else part)
                continue
            container = model.get_submodule(parent)
            if not isinstance(container, nn.Sequential | nn.ModuleList):
                raise PlanError(
                    f"forward step {path!r}: {parent!r} is a {type(container).__name__}, not a "
                    "Sequential or ModuleList, so its children have no call order."
                )
            expanded.extend(
                f"{parent}.{name}" if parent else name for name, _ in container.named_children()
            )
        paths = expanded
    return paths


def expand_forward(model: nn.Module, spec: Sequence[str]) -> list[Step]:
    """The steps of ``spec`` on ``model``: ``*`` expanded, modules and functions resolved."""
    steps: list[Step] = []
    for entry in spec:
        if entry in _FUNCTIONS:
            steps.append((entry, _FUNCTIONS[entry]))
            continue
        for path in _expand_path(model, entry):
            try:
                steps.append((path, model.get_submodule(path)))
            except AttributeError as exc:
                raise PlanError(f"forward step {path!r} names no module: {exc}") from None
    return steps


class Steps:
    """Some consecutive steps of a forward pass, callable like the network part they are."""

    def __init__(self, steps: Sequence[Step], modules: Mapping[str, nn.Module]) -> None:
        self.steps = tuple(steps)
        self._modules = dict(modules)

    def __call__(self, x: Tensor) -> Tensor:
        for _, fn in self.steps:
            x = fn(x)
        return x

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(path for path, _ in self.steps)

    def named_tensors(self) -> Iterator[tuple[str, Tensor]]:
        """Parameters and buffers of the steps' modules, under their paths in the network."""
        for path, _ in self.steps:
            module = self._modules.get(path)
            if module is None:
                continue
            for name, tensor in module.state_dict(keep_vars=True).items():
                yield f"{path}.{name}", tensor


class ForwardPlan:
    """The steps of a forward pass with the block each belongs to (see the module doc).

    A step's block is that of its parameters; a step without parameters (activation,
    pooling, flatten) joins the block of the step before it, so at ``cut == num_blocks`` the
    prefix ends with the pooled feature vector and the suffix is the head alone.
    """

    def __init__(self, model: nn.Module, steps: Sequence[Step], block_of: Mapping[str, int]):
        modules = dict(model.named_modules())
        self._modules = {path: modules[path] for path, _ in steps if path in modules}
        self.steps = list(steps)
        self.blocks: list[int] = []
        covered: dict[str, str] = {}
        previous = 0
        for path, _ in self.steps:
            module = self._modules.get(path)
            names = [f"{path}.{n}" for n, _ in module.named_parameters()] if module else []
            for name in names:
                if name in covered:
                    raise PlanError(f"parameter {name} is used by steps {covered[name]} and {path}")
                covered[name] = path
            blocks = {block_of[n] for n in names if n in block_of}
            if len(blocks) > 1:
                raise PlanError(f"forward step {path!r} spans blocks {sorted(blocks)}")
            block = blocks.pop() if blocks else previous
            rank = float("inf") if block == HEAD else block
            if self.blocks and rank < (
                float("inf") if self.blocks[-1] == HEAD else self.blocks[-1]
            ):
                raise PlanError(f"forward step {path!r} (block {block}) comes after a later block")
            self.blocks.append(block)
            previous = block
        missing = sorted(set(block_of) - set(covered))
        if missing:
            raise PlanError(f"the forward steps never use parameters {missing[:3]}…")
        if not self.blocks or self.blocks[-1] != HEAD:
            raise PlanError("the forward steps must end with the head")

    def split(self, cut: int) -> tuple[Steps, Steps]:
        """Steps of blocks ``0..cut-1`` (the prefix) and the rest, head included (the suffix)."""
        at = next((i for i, b in enumerate(self.blocks) if b == HEAD or b >= cut), len(self.blocks))
        return (
            Steps(self.steps[:at], self._modules),
            Steps(self.steps[at:], self._modules),
        )


__all__ = [
    "FLATTEN",
    "GLOBAL_POOL",
    "ForwardPlan",
    "PlanError",
    "Step",
    "Steps",
    "expand_forward",
]
