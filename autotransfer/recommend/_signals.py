"""Measured domain signals: BatchNorm-statistics shift per block and frozen-feature separability.

Both come from one forward pass of a few hundred training images through the frozen
pretrained backbone (eval mode, no gradient), so they cost seconds on a CPU and need no
source data: the source domain is summarised by the BatchNorm running statistics and by
the pretrained features themselves.

- **BatchNorm shift.** Every BatchNorm layer holds the per-channel mean and variance of its
  input over the pretraining data. For the target sample we measure the same moments and
  compute, per channel, the symmetric KL divergence between the two Gaussians
  ``N(mu_b, var_b)`` and ``N(mu_r, var_r)``; the channel median is the layer's shift, the
  mean over a block's layers its block shift. Families without BatchNorm (ViT, Swin)
  report ``None``.
- **Separability.** Pooled features at a few cut points (about a quarter, half,
  three quarters of the way up, and the top block) are scored by a closed-form ridge
  classifier with two-fold cross-validation on the sample. ``probe_gain`` is how much the
  top features beat the lowest cut, as a fraction of what the lowest cut left to gain:
  pretrained deep features help on data that looks like the source and help little on
  data that does not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from autotransfer.backbones import HEAD, Backbone
from autotransfer.data import BatchTransform, TransferDataset, resize_uint8

_EPS = 1e-5
_RIDGE = 1.0  # ridge strength per sample on standardised features


@dataclass(frozen=True)
class DomainSignals:
    """What one forward pass of the sample measured (all JSON-ready)."""

    sample_size: int
    num_blocks: int
    bn_shift_per_block: list[float | None]
    bn_shift: float | None  # mean over blocks that have BatchNorm; None without any
    probe_cuts: list[int]  # block indices whose outputs were probed, bottom to top
    probe_accuracy: list[float]  # cross-validated ridge accuracy per cut
    probe_gain: float  # (top - lowest) / (1 - lowest), clipped to [-1, 1]
    chance: float  # accuracy of the majority class in the sample
    seconds: float

    @property
    def top_probe_accuracy(self) -> float:
        return self.probe_accuracy[-1]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def draw_sample(
    dataset: TransferDataset, size: int, seed: int, *, input_size: int
) -> tuple[Tensor, Tensor]:
    """Up to ``size`` training images, resized to ``input_size``, and labels, class-stratified.

    Each image is resized as it is read, so a sample of large photographs never sits in
    memory at native resolution.
    """
    labels = dataset.train.labels.numpy()
    rng = np.random.default_rng(seed)
    if len(labels) <= size:
        chosen = np.arange(len(labels))
    else:
        # round-robin over shuffled classes keeps every class present in a small sample
        per_class = [rng.permutation(np.flatnonzero(labels == k)) for k in np.unique(labels)]
        order = [
            idx[i] for i in range(max(map(len, per_class))) for idx in per_class if i < len(idx)
        ]
        chosen = np.sort(np.asarray(order[:size]))
    images = [resize_uint8(dataset.train[int(i)][0], input_size) for i in chosen]
    return torch.stack(images), torch.as_tensor(labels[chosen], dtype=torch.int64)


def _block_roots(backbone: Backbone) -> dict[int, nn.Module]:
    """Per block, the deepest module holding all of the block's parameters, if not the root."""
    prefixes: dict[int, list[list[str]]] = {}
    for name in backbone.block_of:
        block = backbone.block_of[name]
        if block != HEAD:
            prefixes.setdefault(block, []).append(name.split(".")[:-1])
    modules = dict(backbone.model.named_modules())
    roots: dict[int, nn.Module] = {}
    for block, paths in prefixes.items():
        common: list[str] = []
        for parts in zip(*paths, strict=False):
            if len(set(parts)) != 1:
                break
            common.append(parts[0])
        name = ".".join(common)
        if name and name in modules:
            roots[block] = modules[name]
    return roots


def _last_leaf(backbone: Backbone, block: int) -> nn.Module:
    modules = dict(backbone.model.named_modules())
    owners = [name.rsplit(".", 1)[0] for name, b in backbone.block_of.items() if b == block]
    return modules[owners[-1]]


def _pool(output: Any, module: nn.Module) -> Tensor | None:
    if isinstance(output, tuple | list):
        output = output[0]
    if not isinstance(output, Tensor) or output.ndim < 2:
        return None
    if output.ndim == 2:
        return output
    if output.ndim == 3:  # tokens [B, N, D]
        return output.mean(dim=1)
    channels_last = any(isinstance(m, nn.LayerNorm) for m in module.modules()) and not any(
        isinstance(m, _BatchNorm | nn.Conv2d) for m in module.modules()
    )
    dims = tuple(range(1, output.ndim - 1)) if channels_last else tuple(range(2, output.ndim))
    return output.mean(dim=dims)


def probe_cuts(num_blocks: int) -> list[int]:
    """Blocks probed: about 1/4, 1/2, 3/4 of the way up and the top block."""
    return sorted({max(0, round(num_blocks * f) - 1) for f in (0.25, 0.5, 0.75)} | {num_blocks - 1})


def ridge_cv_accuracy(features: Tensor, labels: Tensor, *, folds: int = 2, seed: int = 0) -> float:
    """Two-fold cross-validated accuracy of a closed-form ridge classifier (one-hot targets)."""
    x = features.double()
    y = labels.long()
    n = len(y)
    classes = int(y.max()) + 1
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    correct = 0
    for fold in range(folds):
        test = order[fold::folds]
        mask = torch.ones(n, dtype=torch.bool)
        mask[test] = False
        xtr, xte = x[mask], x[test]
        mean, std = xtr.mean(0), xtr.std(0).clamp_min(_EPS)
        xtr, xte = (xtr - mean) / std, (xte - mean) / std
        targets = torch.nn.functional.one_hot(y[mask], classes).double()
        targets -= targets.mean(0)
        # the dual form solves an n×n system: cheaper than d×d for wide features
        gram = xtr @ xtr.T + _RIDGE * len(xtr) * torch.eye(len(xtr), dtype=x.dtype)
        weights = xtr.T @ torch.linalg.solve(gram, targets)
        correct += int(((xte @ weights).argmax(1) == y[test]).sum())
    return correct / n


def _symmetric_kl(mu_b: Tensor, var_b: Tensor, mu_r: Tensor, var_r: Tensor) -> Tensor:
    var_b, var_r = var_b.clamp_min(_EPS), var_r.clamp_min(_EPS)
    d2 = (mu_b - mu_r) ** 2
    return 0.25 * (var_b / var_r + var_r / var_b - 2 + d2 / var_r + d2 / var_b)


@torch.no_grad()
def measure_signals(
    backbone: Backbone, images: Tensor, labels: Tensor, *, input_size: int, seed: int = 0
) -> DomainSignals:
    """Forward ``images`` (uint8 ``[N, C, H, W]``) once through the frozen ``backbone``."""
    start = time.perf_counter()
    model = backbone.model
    model.eval()
    n = backbone.num_blocks
    cuts = probe_cuts(n)
    roots = _block_roots(backbone)
    taps = {b: roots.get(b) or _last_leaf(backbone, b) for b in cuts}
    features: dict[int, Tensor] = {}
    bn_shift: dict[str, float] = {}
    modules = dict(model.named_modules())

    def tap(block: int, module: nn.Module) -> Callable[..., None]:
        def hook(_m: nn.Module, _inp: Any, output: Any) -> None:
            pooled = _pool(output, module)
            if pooled is not None:
                features[block] = pooled.detach().float()

        return hook

    def bn_hook(name: str) -> Callable[..., None]:
        def hook(m: _BatchNorm, inp: tuple[Tensor, ...]) -> None:
            x = inp[0].float().transpose(0, 1).reshape(inp[0].shape[1], -1)
            assert m.running_mean is not None and m.running_var is not None
            kl = _symmetric_kl(x.mean(1), x.var(1), m.running_mean, m.running_var)
            bn_shift[name] = float(kl.median())

        return hook

    handles = [taps[b].register_forward_hook(tap(b, taps[b])) for b in cuts]
    for name in backbone._norm_block:
        module = modules[name]
        if isinstance(module, _BatchNorm) and module.running_mean is not None:
            handles.append(module.register_forward_pre_hook(bn_hook(name)))
    try:
        transform = BatchTransform(backbone.mean, backbone.std)
        x = transform(resize_uint8(images, input_size), train=False)
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    per_block: list[list[float]] = [[] for _ in range(n)]
    for name, value in bn_shift.items():
        per_block[backbone._norm_block[name]].append(value)
    shifts = [float(np.mean(v)) if v else None for v in per_block]
    measured = [s for s in shifts if s is not None]
    accuracy = [ridge_cv_accuracy(features[b], labels, seed=seed) for b in cuts]
    low, top = accuracy[0], accuracy[-1]
    gain = (top - low) / max(1.0 - low, 1e-3)
    majority = float(torch.bincount(labels).max()) / len(labels)
    return DomainSignals(
        sample_size=len(labels),
        num_blocks=n,
        bn_shift_per_block=[round(s, 4) if s is not None else None for s in shifts],
        bn_shift=round(float(np.mean(measured)), 4) if measured else None,
        probe_cuts=cuts,
        probe_accuracy=[round(a, 4) for a in accuracy],
        probe_gain=round(float(np.clip(gain, -1.0, 1.0)), 4),
        chance=round(majority, 4),
        seconds=round(time.perf_counter() - start, 3),
    )
