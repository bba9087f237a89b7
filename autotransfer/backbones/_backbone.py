"""A pretrained network seen as ordered blocks plus a new head, frozen from the bottom up."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from autotransfer.backbones._layout import HEAD, BlockLayout
from autotransfer.backbones._split import ForwardPlan, PlanError, Step, Steps
from autotransfer.errors import ConfigError


class Backbone(nn.Module):
    """A network whose parameters are split into ``num_blocks`` ordered blocks and a head.

    Freeze depth ``k`` (:meth:`set_freeze_depth`) makes the top ``k`` blocks and the head
    trainable and everything below frozen: ``requires_grad=False``, and frozen blocks stay in
    eval mode even after ``train()``, so their BatchNorm statistics are fixed and their
    dropout and stochastic depth are off. The frozen part is then a pure function of its
    input, which is what lets :meth:`split` cache its output. ``k = 0`` is feature
    extraction, ``k = num_blocks`` full fine-tuning.

    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential()
    >>> net.add_module("stem", nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)))
    >>> net.add_module("body", nn.Sequential(nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4)))
    >>> net.add_module("pool", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    >>> net.add_module("fc", nn.Linear(4, 2))
    >>> layout = BlockLayout(stem=r"^stem\\.", blocks=(r"^body\\.",), head="fc")
    >>> bb = Backbone(net, name="tiny", layout=layout)
    >>> bb.num_blocks
    2
    >>> bb.set_freeze_depth(1)
    >>> _ = bb.train()
    >>> net.stem[0].weight.requires_grad, net.body[0].weight.requires_grad
    (False, True)
    >>> net.stem[1].training, net.body[1].training
    (False, True)
    >>> before = net.stem[1].running_mean.clone()
    >>> _ = bb(torch.randn(2, 3, 8, 8))
    >>> torch.equal(before, net.stem[1].running_mean)
    True
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        name: str,
        layout: BlockLayout,
        mean: tuple[float, float, float] = (0.485, 0.456, 0.406),
        std: tuple[float, float, float] = (0.229, 0.224, 0.225),
        weights: str = "none",
        steps: list[Step] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.name = name
        self.layout = layout
        self.mean = mean
        self.std = std
        self.weights = weights
        names = [n for n, _ in model.named_parameters()]
        self.block_of: dict[str, int] = layout.assign(names)
        self.num_blocks = 1 + max((b for b in self.block_of.values() if b != HEAD), default=-1)
        if self.num_blocks == 0:
            raise ValueError(f"Layout of {name} matched no parameters; check its block patterns.")
        norm_names = [n for n, m in model.named_modules() if isinstance(m, _BatchNorm)]
        assigned = layout.assign([f"{n}." for n in norm_names])
        self._norm_block = {n: assigned[f"{n}."] for n in norm_names if assigned[f"{n}."] != HEAD}
        self._block_roots = self._single_block_modules()
        self.freeze_depth = self.num_blocks
        self.freeze_bn_stats = False
        self._plan: ForwardPlan | None = None
        self.split_unavailable: str | None = f"{name} declares no forward steps"
        if steps is not None:
            try:
                self._plan = ForwardPlan(model, steps, self.block_of)
                self.split_unavailable = None
            except PlanError as exc:
                self.split_unavailable = f"{name}: {exc}"

    def _single_block_modules(self) -> list[tuple[str, int]]:
        """Outermost modules whose parameters all lie in one block (eval'd when it is frozen)."""
        single: dict[str, int] = {}
        for name, module in self.model.named_modules():
            blocks = {
                self.block_of[f"{name}.{p}" if name else p] for p, _ in module.named_parameters()
            }
            if len(blocks) == 1 and HEAD not in blocks:
                single[name] = blocks.pop()
        return [
            (name, block)
            for name, block in single.items()
            if name and name.rpartition(".")[0] not in single
        ]

    def forward(self, x):
        return self.model(x)

    def first_trainable_block(self, k: int | None = None) -> int:
        """Index of the lowest trainable block at depth ``k`` (``num_blocks`` when k = 0)."""
        return self.num_blocks - (self.freeze_depth if k is None else k)

    def check_freeze_depth(self, k: int) -> None:
        if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= self.num_blocks:
            raise ConfigError(
                f"freeze depth must be an integer in 0..{self.num_blocks} for {self.name} "
                f"(0 = train only the head, {self.num_blocks} = fine-tune everything), "
                f"but got {k=}."
            )

    def set_freeze_depth(self, k: int, *, freeze_bn_stats: bool = False) -> None:
        """Make the top ``k`` blocks and the head trainable, freeze the rest (see class doc).

        ``freeze_bn_stats`` also keeps BatchNorm statistics fixed inside trainable blocks,
        for batches too small to estimate them; their affine parameters still train.
        """
        self.check_freeze_depth(k)
        self.freeze_depth = k
        self.freeze_bn_stats = freeze_bn_stats
        first = self.first_trainable_block()
        for name, param in self.model.named_parameters():
            block = self.block_of[name]
            param.requires_grad_(block == HEAD or block >= first)
        self.train(self.training)

    def set_bn_momentum(self, momentum: float | None) -> None:
        """Set the running-statistics momentum of every BatchNorm layer (None keeps each own).

        Weights ported from TensorFlow carry momentum 0.01 (TF's 0.99), tuned for hundreds of
        ImageNet epochs; in a few fine-tuning epochs such statistics barely move from their
        start, and a network trained from scratch then evaluates at chance. Frozen layers are
        unaffected: they stay in eval mode.
        """
        if momentum is None:
            return
        for module in self.model.modules():
            if isinstance(module, _BatchNorm):
                module.momentum = momentum

    def frozen_norm_names(self) -> list[str]:
        first = self.first_trainable_block()
        return [n for n, b in self._norm_block.items() if self.freeze_bn_stats or b < first]

    def train(self, mode: bool = True) -> Backbone:
        super().train(mode)
        if mode:
            modules = dict(self.model.named_modules())
            first = self.first_trainable_block()
            for name, block in self._block_roots:
                if block < first:
                    modules[name].eval()
            for name in self.frozen_norm_names():
                modules[name].eval()
        return self

    def split(self, k: int | None = None) -> tuple[Steps, Steps]:
        """The forward pass cut below the lowest trainable block at depth ``k``.

        Returns ``(prefix, suffix)`` with ``suffix(prefix(x)) == self(x)``: the prefix runs the
        frozen blocks ``0..n-k-1`` (at ``k = 0`` up to the pooled feature vector), the suffix
        the trainable blocks and the head, dropout included. Raises ``ValueError`` when
        :attr:`split_unavailable` says why this network cannot be split.
        """
        if self._plan is None:
            raise ValueError(f"cannot split the forward pass: {self.split_unavailable}")
        depth = self.freeze_depth if k is None else k
        self.check_freeze_depth(depth)
        return self._plan.split(self.first_trainable_block(depth))

    def block_parameters(self, block: int) -> Iterator[tuple[str, nn.Parameter]]:
        """``(name, parameter)`` pairs of one block (``HEAD`` = -1 for the head)."""
        for name, param in self.model.named_parameters():
            if self.block_of[name] == block:
                yield name, param

    def load_head(self, state: dict[str, Tensor]) -> None:
        """Start the head from ``state`` (``{parameter name: tensor}``, e.g. a linear probe)."""
        head = dict(self.block_parameters(HEAD))
        if set(state) != set(head):
            raise ValueError(f"a head state needs {sorted(head)}, but got {sorted(state)}.")
        with torch.no_grad():
            for name, param in head.items():
                param.copy_(state[name].to(param.device, param.dtype))

    def trainable_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        for name, param in self.model.named_parameters():
            if param.requires_grad:
                yield name, param

    def trainable_parameter_count(self) -> int:
        return sum(p.numel() for _, p in self.trainable_parameters())

    def block_sizes(self) -> list[int]:
        """Parameter count per block, bottom to top (the head is not included)."""
        sizes = [0] * self.num_blocks
        for name, param in self.model.named_parameters():
            if self.block_of[name] != HEAD:
                sizes[self.block_of[name]] += param.numel()
        return sizes
