"""Freeze depth from a fraction of a backbone's blocks, rounded the same way everywhere."""

from __future__ import annotations

import math


def depth_of_fraction(fraction: float, num_blocks: int) -> int:
    """``fraction × num_blocks`` blocks, rounded half up (never Python's half-to-even).

    Search spaces (``type: depth, fraction: [...]``) and the recommender's rules both state
    depths as fractions; one rounding keeps "half of 17 blocks" the same 9 in both.

    >>> depth_of_fraction(0.5, 17), depth_of_fraction(0.25, 10), depth_of_fraction(1.0, 17)
    (9, 3, 17)
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], but got {fraction=}.")
    return math.floor(fraction * num_blocks + 0.5)
