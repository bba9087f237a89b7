"""How well a frozen backbone's top features separate the classes at each input size.

The same sample of training images (class-stratified, the recommender's) is resized to each
candidate size and passed once through the frozen network; a ridge probe, cross-validated
on the sample, scores its top features. What this measures is feature extraction at that
size, which is what a search gains from a larger input when it trains few blocks; how well it
predicts fine-tuned accuracy is checked in docs/benchmarks.md (input size).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from autotransfer.backbones import create_backbone
from autotransfer.data import TransferDataset
from autotransfer.recommend._signals import draw_sample, measure_signals


@dataclass(frozen=True)
class SizeProbe:
    """Feature extraction at one input size: the top features' probe accuracy on the sample,
    and the seconds the sample's forward pass and probes took."""

    input_size: int
    probe_accuracy: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def probe_sizes(
    dataset: TransferDataset,
    backbone: str,
    sizes: list[int],
    *,
    weights: str = "DEFAULT",
    sample_size: int = 256,
    seed: int = 0,
) -> list[SizeProbe]:
    """:class:`SizeProbe` at each of ``sizes`` (ascending), on one sample of ``dataset``."""
    classes = max(2, len(dataset.class_names))
    rows = []
    for size in sorted(set(sizes)):
        net = create_backbone(backbone, num_classes=classes, weights=weights, input_size=size)
        images, labels = draw_sample(dataset, sample_size, seed, input_size=size)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            signals = measure_signals(net, images, labels, input_size=size, seed=seed)
        rows.append(SizeProbe(size, signals.top_probe_accuracy, signals.seconds))
    return rows
