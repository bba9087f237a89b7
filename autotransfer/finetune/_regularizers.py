"""L2-SP: penalise the distance of trainable pretrained weights from their starting point."""

from __future__ import annotations

import torch

from autotransfer.backbones import HEAD, Backbone


class L2SP:
    """``alpha / 2 * sum ||w - w0||^2`` over the trainable pretrained parameters.

    Li et al., "Explicit inductive bias for transfer learning" (2018): regularising towards
    the pretrained solution instead of towards zero keeps fine-tuned features close to what
    made them useful. The new head is excluded: it has no starting point worth keeping.
    Construct it after the freeze depth is set; frozen parameters never move, so they are
    not tracked.
    """

    def __init__(self, backbone: Backbone, alpha: float) -> None:
        if alpha < 0:
            raise ValueError(f"L2-SP strength must be >= 0, but got {alpha=}.")
        self.alpha = alpha
        self._pairs = [
            (param, param.detach().clone())
            for name, param in backbone.trainable_parameters()
            if backbone.block_of[name] != HEAD
        ]

    def penalty(self) -> torch.Tensor | None:
        if not self._pairs or self.alpha == 0:
            return None
        total = sum(((p - p0) ** 2).sum() for p, p0 in self._pairs)
        return 0.5 * self.alpha * total  # type: ignore[return-value]

    def distance(self) -> float:
        """Current Euclidean distance from the starting weights (for logging and tests)."""
        with torch.no_grad():
            return float(sum(((p - p0) ** 2).sum() for p, p0 in self._pairs) ** 0.5)
