"""The train/eval loop of one trial, reporting validation metrics after every epoch."""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from autotransfer.backbones import Backbone, create_backbone
from autotransfer.cache import FeatureCache
from autotransfer.data import TransferDataset
from autotransfer.finetune._config import TrialConfig
from autotransfer.finetune._device import Precision, resolve_device
from autotransfer.finetune._feeds import Feed, bypass_reason, cached_feed, loader_feed
from autotransfer.finetune._imbalance import class_weights
from autotransfer.finetune._metrics import Scores, check_metric, class_report, ranked, score
from autotransfer.finetune._optim import make_optimizer, make_scheduler
from autotransfer.finetune._param_groups import param_groups
from autotransfer.finetune._regularizers import L2SP
from autotransfer.finetune._result import EpochMetrics, TrialResult
from autotransfer.finetune._warm import probe_head

log = logging.getLogger(__name__)

Reporter = Callable[[EpochMetrics], None]
"""Called after each epoch; raising (e.g. ``optuna.TrialPruned``) stops the trial there."""
StepCallback = Callable[[int, int, int], None]
"""Called after each training step with (epoch, step, steps_per_epoch)."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class _Phase:
    """A stretch of epochs trained at one freeze depth with its own optimizer and schedule."""

    name: str  # "lp" or "ft"
    depth: int
    epochs: int


def _phases(config: TrialConfig) -> list[_Phase]:
    # LP-FT (Kumar et al. 2022): a trained head before unfreezing keeps the random head's
    # large early gradients from distorting pretrained features.
    if config.lp_ft_epochs:
        return [
            _Phase("lp", 0, config.lp_ft_epochs),
            _Phase("ft", config.freeze_depth, config.epochs - config.lp_ft_epochs),
        ]
    return [_Phase("ft", config.freeze_depth, config.epochs)]


@dataclass(frozen=True)
class _Evaluation:
    loss: float
    scores: Scores
    labels: np.ndarray
    predicted: np.ndarray


@torch.no_grad()
def _evaluate(
    model: Backbone,
    forward: Callable[[Tensor], Tensor],
    batches: Iterable[tuple[Tensor, Tensor]],
    precision: Precision,
) -> _Evaluation:
    model.eval()
    loss_sum, seen = 0.0, 0
    all_labels, all_probs = [], []
    for x, labels in batches:
        with precision.autocast():
            logits = forward(x).float()
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
        seen += labels.numel()
        all_labels.append(labels.cpu())
        all_probs.append(logits.softmax(1).cpu())
    model.train()
    labels_np = torch.cat(all_labels).numpy()
    probs = torch.cat(all_probs).numpy()
    return _Evaluation(loss_sum / max(seen, 1), score(labels_np, probs), labels_np, probs.argmax(1))


def make_feed(
    config: TrialConfig,
    dataset: TransferDataset,
    backbone: Backbone,
    device: torch.device,
    precision: Precision,
    cache: FeatureCache | None,
) -> Feed:
    """The cached feed when ``cache`` is given and the trial allows it, else image loaders.

    LP-FT caches the prefix below its fine-tuning depth: the head-only phase then also runs
    the (still frozen, eval-mode) blocks above the cut, which keeps one cache entry per trial.
    """
    if cache is not None:
        reason = bypass_reason(config, backbone)
        if reason is None:
            return cached_feed(config, dataset, backbone, device, precision, cache)
        cache.note_bypass(reason)
    return loader_feed(config, dataset, backbone, device)


def train_trial(
    config: TrialConfig,
    dataset: TransferDataset,
    *,
    reporter: Reporter | None = None,
    on_step: StepCallback | None = None,
    cache: FeatureCache | None = None,
) -> TrialResult:
    """Train and evaluate one configuration end to end; see :class:`TrialConfig`.

    With a ``cache``, the frozen blocks' outputs are read from it (computed on first use)
    and only the trainable top runs; the result is the same as without it, up to float
    rounding (and fp16 storage when the cache uses it).
    """
    return fit(config, dataset, reporter=reporter, on_step=on_step, cache=cache)[0]


def fit(
    config: TrialConfig,
    dataset: TransferDataset,
    *,
    reporter: Reporter | None = None,
    on_step: StepCallback | None = None,
    cache: FeatureCache | None = None,
    keep_best: bool = False,
    on_trained: Callable[[Backbone], None] | None = None,
) -> tuple[TrialResult, Backbone]:
    """:func:`train_trial` that also returns the trained network (for exporting it).

    ``keep_best`` returns the network as it was after its best epoch (the epoch whose
    accuracy is the result's ``best_val_accuracy``), not after its last. ``on_trained`` is
    called with that network after the last epoch, before the last report (a reporter
    that ends the trial there cannot cut it short).
    """
    seed_everything(config.seed)
    device = resolve_device(config.device)
    precision = Precision(device, config.amp)
    backbone = create_backbone(
        config.backbone,
        num_classes=len(dataset.class_names),
        weights=config.weights,
        dropout=config.dropout,
        input_size=config.input_size,
    )
    backbone.check_freeze_depth(config.freeze_depth)
    backbone.set_bn_momentum(config.bn_momentum)
    backbone.to(device)
    if device.type == "cuda":
        backbone.to(memory_format=torch.channels_last)
    check_metric(config.metric, len(dataset.class_names))
    log.info("trial config: %s", config.model_dump())
    start = time.perf_counter()
    weight = class_weights(dataset.train.labels, len(dataset.class_names), config.class_weighting)
    if weight is not None:
        weight = weight.to(device)
    if config.warm_start:
        backbone.load_head(probe_head(backbone, dataset, config, device, precision, cache))
    feed = make_feed(config, dataset, backbone, device, precision, cache)

    history: list[EpochMetrics] = []
    best_state: dict[str, Tensor] | None = None
    best_score = -math.inf
    epoch = 0
    for phase in _phases(config):
        backbone.set_freeze_depth(phase.depth, freeze_bn_stats=config.freeze_bn_stats)
        groups = param_groups(
            backbone,
            base_lr=config.base_lr,
            layer_decay=config.layer_decay,
            head_lr_mult=config.head_lr_mult,
            weight_decay=config.weight_decay,
            l2sp=config.l2sp > 0,
        )
        optimizer = make_optimizer(groups, config)
        steps_per_epoch = feed.steps_per_epoch
        scheduler = make_scheduler(
            optimizer,
            total_steps=phase.epochs * steps_per_epoch,
            warmup_steps=round(min(config.warmup_epochs, phase.epochs) * steps_per_epoch),
        )
        l2sp = L2SP(backbone, config.l2sp) if config.l2sp > 0 else None
        for _ in range(phase.epochs):
            epoch += 1
            backbone.train()
            loss_sum, correct, seen = 0.0, 0, 0
            for step, (x, labels) in enumerate(feed.train(), 1):
                with precision.autocast():
                    logits = feed.forward(x)
                    loss = F.cross_entropy(
                        logits, labels, weight=weight, label_smoothing=config.label_smoothing
                    )
                penalty = l2sp.penalty() if l2sp is not None else None
                objective = loss if penalty is None else loss + penalty
                optimizer.zero_grad(set_to_none=True)
                precision.scaler.scale(objective).backward()
                precision.scaler.step(optimizer)
                precision.scaler.update()
                scheduler.step()
                loss_sum += loss.item() * labels.numel()
                correct += int((logits.argmax(1) == labels).sum())
                seen += labels.numel()
                if on_step is not None:
                    on_step(epoch, step, steps_per_epoch)
            evaluation = _evaluate(backbone, feed.forward, feed.val(), precision)
            val_score = evaluation.scores.value(config.metric)
            metrics = EpochMetrics(
                epoch=epoch,
                phase=phase.name,  # type: ignore[arg-type]
                train_loss=loss_sum / max(seen, 1),
                train_accuracy=correct / max(seen, 1),
                val_loss=evaluation.loss,
                val_accuracy=evaluation.scores.accuracy,
                lr_head=optimizer.param_groups[0]["lr"],
                elapsed_s=time.perf_counter() - start,
                trainable_parameters=backbone.trainable_parameter_count(),
                val_score=val_score,
                val_metrics=evaluation.scores.to_dict(),
                class_report=class_report(
                    evaluation.labels, evaluation.predicted, list(dataset.class_names)
                ),
            )
            history.append(metrics)
            # the first best epoch wins ties, as max() picks the result's best epoch below
            if keep_best and (best_state is None or _ranked(metrics) > best_score):
                best_score = _ranked(metrics)
                best_state = {k: v.detach().clone() for k, v in backbone.model.state_dict().items()}
            if epoch == config.epochs:
                if best_state is not None:
                    backbone.model.load_state_dict(best_state)
                if on_trained is not None:
                    on_trained(backbone)
            log.info("epoch %d: %s", epoch, metrics)
            if reporter is not None:
                reporter(metrics)

    best = max(history, key=_ranked)
    result = TrialResult(
        best_val_accuracy=best.val_accuracy,
        final_val_accuracy=history[-1].val_accuracy,
        best_epoch=best.epoch,
        final_val_loss=history[-1].val_loss,
        train_time_s=time.perf_counter() - start,
        trainable_parameters=backbone.trainable_parameter_count(),
        total_parameters=sum(p.numel() for p in backbone.parameters()),
        freeze_depth=config.freeze_depth,
        num_blocks=backbone.num_blocks,
        epochs_run=len(history),
        device=str(device),
        history=history,
        metric=config.metric,
        best_val_score=best.val_score,
        class_report=best.class_report,
    )
    return result, backbone


def _ranked(m: EpochMetrics) -> float:
    return ranked(m.val_score)


def evaluate(
    backbone: Backbone, config: TrialConfig, dataset: TransferDataset
) -> tuple[Scores, dict[str, object]]:
    """Every metric and the class report of a trained network on ``dataset``'s validation
    split, through the image loader (no cache), preprocessed as ``config`` trains."""
    device = resolve_device(config.device)
    precision = Precision(device, config.amp)
    backbone.to(device)
    feed = loader_feed(config, dataset, backbone, device)
    evaluation = _evaluate(backbone, feed.forward, feed.val(), precision)
    report = class_report(evaluation.labels, evaluation.predicted, list(dataset.class_names))
    return evaluation.scores, report
