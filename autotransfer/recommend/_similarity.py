"""One domain-similarity score in [0, 1] from the measured signals, with its calibration.

Calibration (EfficientNet-Lite0, packaged ImageNet weights, 32×32 input, 256 training images,
measured 2026-11-25 with ``autotransfer recommend``; the figures are reproduced by
``tests/test_recommend.py`` and ``benchmarks/recommender.py``):

======================================  =========  ==========  ==========
sample                                  BN shift   probe gain  similarity
======================================  =========  ==========  ==========
patches of 6 photographs (skimage,      0.35       0.82        0.76
sklearn), class = source photo
Fashion-MNIST, 1,000 training images    0.96       0.23        0.44
scikit-learn digits (8×8, upsampled)    2.06       0.56        0.39
uniform noise, random labels            7.39       0.07        0.11
======================================  =========  ==========  ==========

- ``bn_similarity = 1 / (1 + bn_shift / BN_SCALE)`` with ``BN_SCALE = 1``: the mean
  symmetric KL between target and ImageNet BatchNorm statistics. Photographs sit near 0.35
  (not 0: 32×32 crops are not 224×224 ImageNet images), grayscale line art and digits near
  1–2, noise beyond 5; ``BN_SCALE`` puts the midpoint 0.5 between photographs and
  grayscale data.
- ``probe_gain`` (how much the top frozen features beat the lowest cut, see ``_signals``)
  is high when pretrained deep features fit the data. It is noisy on a few hundred
  images and undefined when even the lowest cut separates the classes (a trivially easy
  sample), so it gets a quarter of the weight, and none when the lowest cut is already at
  ``SATURATED`` accuracy or above.
- Families without BatchNorm (ViT, Swin) use the probe gain alone, and 0.5 (undecided)
  when the lowest cut is saturated.

``SIMILAR`` = 0.5 is the threshold of the decision table: photographs fall above it,
digits, Fashion-MNIST and noise below.
"""

from __future__ import annotations

from autotransfer.recommend._signals import DomainSignals

BN_SCALE = 1.0
PROBE_WEIGHT = 0.25
SATURATED = 0.95
SIMILAR = 0.5


def bn_similarity(bn_shift: float) -> float:
    return 1.0 / (1.0 + max(bn_shift, 0.0) / BN_SCALE)


def similarity(signals: DomainSignals) -> float:
    """The combined score in [0, 1] (see the module docstring for the calibration)."""
    gain = min(max(signals.probe_gain, 0.0), 1.0)
    informative = signals.probe_accuracy[0] < SATURATED
    if signals.bn_shift is None:
        return round(gain if informative else 0.5, 4)
    bn = bn_similarity(signals.bn_shift)
    if not informative:
        return round(bn, 4)
    return round((1.0 - PROBE_WEIGHT) * bn + PROBE_WEIGHT * gain, 4)
