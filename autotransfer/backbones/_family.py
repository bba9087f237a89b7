"""The extension point: a backbone family builds architectures and knows their block layout."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence

from torch import nn

from autotransfer.backbones._layout import BlockLayout
from autotransfer.backbones._split import PlanError, Step, expand_forward

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class BackboneFamily(ABC):
    """A group of related architectures (e.g. ResNet-18 … ResNet-152) with one block layout rule.

    Contract: :meth:`build` returns the *original* network (its pretrained classifier still in
    place) with the requested weights loaded, ready for :meth:`layout` to split it into blocks.
    ``weights`` is already resolved by the registry: ``"none"`` (random init), or one of
    :meth:`weight_names`. Local state-dict files are not a family's concern: the registry
    builds with ``"none"`` and loads the file itself, so every family gets the same checks.
    A family must not replace the head, freeze anything or move the model to a device.
    """

    name: str
    variants: Sequence[str]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    min_input_size: int = 32

    def native_input_size(self, variant: str) -> int:
        """The input size the pretrained weights were trained at (ImageNet's 224 unless a
        family says otherwise): the largest input a search picks for it by itself."""
        return 224

    def input_multiple(self, variant: str) -> int:
        """Input sizes must be a multiple of this (ViT: the patch size)."""
        return 1

    @abstractmethod
    def build(self, variant: str, *, weights: str, input_size: int) -> nn.Module:
        """Return the network for ``variant`` with ``weights`` loaded (see the class contract)."""

    @abstractmethod
    def layout(self, variant: str) -> BlockLayout:
        """Return how ``variant``'s parameters split into ordered blocks, stem first."""

    @abstractmethod
    def weight_names(self, variant: str) -> tuple[str, ...]:
        """Pretrained weight names this family can load for ``variant``, ``DEFAULT`` first."""

    def adapt_input_size(self, model: nn.Module, variant: str, input_size: int) -> nn.Module:
        """Adjust a built (and weight-loaded) network to ``input_size``; most need nothing."""
        return model

    def forward_steps(self, model: nn.Module, variant: str) -> list[Step] | None:
        """The forward pass of ``model`` (head already replaced) as ordered steps, or None.

        The default expands the layout's declared ``forward``; a family overrides this only
        when a step needs more than ``module(x)`` (EfficientNet-Lite's per-block drop rate).
        None means the forward cannot be split, and cached training falls back to the full
        network.
        """
        spec = self.layout(variant).forward
        if spec is None:
            return None
        try:
            return expand_forward(model, spec)
        except PlanError as exc:
            log.warning("%s: declared forward steps do not fit the network (%s)", variant, exc)
            return None
