"""The warm start: one linear probe on the frozen top features, the head every trial starts from.

Every trial of a study starts from the same pretrained network, so a head fitted once on the
network's frozen top features (feature extraction, "LP") is a valid starting point for any
freeze depth: fine-tuning then starts from a trained head instead of a random one (LP-FT,
Kumar et al. 2022), and its first epochs already say how a configuration compares. The
features come from the feature cache, so the probe costs one pass over the data the first
time (the same pass a depth-0 trial makes) and a few seconds of L-BFGS afterwards.
"""

from __future__ import annotations

import logging
import threading
import time

import torch
import torch.nn.functional as F
from torch import Tensor

from autotransfer.backbones import HEAD, Backbone
from autotransfer.cache import FeatureCache, FeatureKey, Features
from autotransfer.data import TransferDataset
from autotransfer.errors import ConfigError
from autotransfer.finetune._config import TrialConfig
from autotransfer.finetune._device import Precision
from autotransfer.finetune._feeds import cached_features, compute_features, feature_key

log = logging.getLogger(__name__)

# probes fitted in this process, by the features they were fitted on: a worker's trials
# share one (a different process fits its own from the same cached features, identically)
_fitted: dict[FeatureKey | tuple[str, ...], dict[str, Tensor]] = {}
_lock = threading.Lock()


def fit_linear_probe(features: Tensor, labels: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """Multinomial logistic regression by full-batch L-BFGS: ``(weight [C, D], bias [C])``.

    The L2 penalty is scikit-learn's ``LogisticRegression`` default (C = 1, i.e.
    ``‖w‖² / 2`` against the summed loss), which keeps a separable problem's weights finite.

    >>> x = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.1, 0.9], [0.9, 0.2]])
    >>> w, b = fit_linear_probe(x, torch.tensor([0, 1, 0, 1]), 2)
    >>> (x @ w.T + b).argmax(1).tolist()
    [0, 1, 0, 1]
    """
    x = features.float()
    y = labels.long()
    weight = torch.zeros(num_classes, x.shape[1], requires_grad=True)
    bias = torch.zeros(num_classes, requires_grad=True)
    l2 = 1.0 / (2.0 * len(y))
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=300, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight.T + bias, y) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return weight.detach(), bias.detach()


def _head_params(backbone: Backbone) -> tuple[str, str]:
    """Names of the head's weight [C, D] and bias [C]: a warm start needs a linear head."""
    params = dict(backbone.block_parameters(HEAD))
    weights = [n for n, p in params.items() if p.dim() == 2]
    biases = [n for n, p in params.items() if p.dim() == 1]
    if len(params) != 2 or len(weights) != 1 or len(biases) != 1:
        raise ConfigError(
            f"warm_start needs a single linear head, but {backbone.name}'s head has "
            f"{sorted(params)}; set warm_start: false for this backbone."
        )
    return weights[0], biases[0]


def probe_head(
    backbone: Backbone,
    dataset: TransferDataset,
    config: TrialConfig,
    device: torch.device,
    precision: Precision,
    cache: FeatureCache | None,
) -> dict[str, Tensor]:
    """The head fitted on ``backbone``'s frozen top features of the training split (the
    validation split is never seen), as ``{parameter name: tensor}`` for :meth:`load_head`."""
    weight_name, bias_name = _head_params(backbone)
    prefix, _ = backbone.split(0)
    key: FeatureKey | tuple[str, ...]
    if cache is not None:
        key = feature_key(backbone, prefix, backbone.num_blocks, dataset, config, precision, cache)
    else:
        key = (backbone.name, backbone.weights, dataset.fingerprint, str(config.input_size))
    with _lock:
        if key in _fitted:
            return _fitted[key]
        start = time.perf_counter()

        features: Features | None = None
        if cache is not None and isinstance(key, FeatureKey):
            features = cached_features(
                key, prefix, backbone, dataset, config, device, precision, cache
            )
        if features is None:
            features = compute_features(prefix, backbone, dataset, config, device, precision)
        weight, bias = fit_linear_probe(
            features.train.float().cpu(), dataset.train.labels, len(dataset.class_names)
        )
        _fitted[key] = {weight_name: weight, bias_name: bias}
        log.info("warm start: linear probe fitted in %.1f s", time.perf_counter() - start)
        return _fitted[key]
