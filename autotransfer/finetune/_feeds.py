"""Where a trial's batches come from: image loaders through the whole network, or cached
frozen-prefix features through its trainable top only.

Both feeds draw batches in the same order: the cached feed runs the same DataLoader
machinery over row indices, with the same seeded generator, batch size and ``drop_last``,
so the sampler and the global RNG (which a generator-less loader draws a seed from) advance
exactly as with images, and dropout and drop-connect masks match as well.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from autotransfer.backbones import Backbone, Steps
from autotransfer.cache import FeatureCache, FeatureKey, Features, Shapes, prefix_digest
from autotransfer.data import BatchTransform, TransferDataset, balanced_sampler, make_loaders
from autotransfer.finetune._config import TrialConfig
from autotransfer.finetune._device import Precision

Batches = Iterator[tuple[Tensor, Tensor]]

# Features up to this size move to an accelerator once per trial instead of per batch.
_ON_DEVICE_BYTES = 1 << 30
# The feature pass runs in batches of at most this many input pixels: 256 images up to
# 64 px, 20 at 224 px (256 at 224 px would hold gigabytes of activations for no speed-up).
_COMPUTE_PIXELS = 256 * 64 * 64


@dataclass
class Feed:
    """``forward`` maps what ``train()``/``val()`` yield (one fresh pass each call) to logits."""

    forward: Callable[[Tensor], Tensor]
    train: Callable[[], Batches]
    val: Callable[[], Batches]
    steps_per_epoch: int
    cached: bool = False


def _drop_last(config: TrialConfig, dataset: TransferDataset) -> bool:
    return len(dataset.train) > config.batch_size  # a batch of 1 breaks BatchNorm


def loader_feed(
    config: TrialConfig, dataset: TransferDataset, backbone: Backbone, device: torch.device
) -> Feed:
    """Uint8 image batches, transformed (and augmented when asked) on ``device``."""
    train_loader, val_loader = make_loaders(
        dataset,
        input_size=config.input_size,
        batch_size=config.batch_size,
        seed=config.seed,
        num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
        drop_last=_drop_last(config, dataset),
        balanced=config.balanced_sampler,
    )
    transform = BatchTransform(backbone.mean, backbone.std, augment=config.augment).to(device)
    augment_rng = torch.Generator(device=device).manual_seed(config.seed)

    def train() -> Batches:
        for images, labels in train_loader:
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            yield transform(images, train=True, generator=augment_rng), labels

    def val() -> Batches:
        for images, labels in val_loader:
            images = images.to(device, non_blocking=True)
            yield transform(images, train=False), labels.to(device, non_blocking=True)

    return Feed(backbone, train, val, len(train_loader))


def bypass_reason(config: TrialConfig, backbone: Backbone) -> str | None:
    """Why this trial cannot use cached features, or None when it can."""
    if config.augment:
        return "random augmentation is on, so frozen features differ every epoch"
    if config.freeze_depth >= backbone.num_blocks:
        return f"freeze depth {config.freeze_depth} fine-tunes every block: nothing is frozen"
    if backbone.split_unavailable:
        return f"the forward pass cannot be split ({backbone.split_unavailable})"
    return None


def _ordered_splits(dataset: TransferDataset) -> dict[str, TransferDataset]:
    # make_loaders keeps the order of its validation split: put each split there in turn
    return {
        "train": dataclasses.replace(dataset, train=dataset.val, val=dataset.train),
        "val": dataclasses.replace(dataset, train=dataset.val),
    }


def feature_shapes(
    prefix: Steps, backbone: Backbone, dataset: TransferDataset, config: TrialConfig
) -> Shapes:
    """The shapes :func:`fill_features` fills, from one blank image through the prefix (on
    the CPU, in eval mode, without touching any RNG)."""
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            device = next((p.device for p in backbone.parameters()), torch.device("cpu"))
            blank = torch.zeros(1, dataset.channels, config.input_size, config.input_size)
            x = BatchTransform(backbone.mean, backbone.std).to(device)(
                blank.to(torch.uint8).to(device), train=False
            )
            row = tuple(prefix(x).shape[1:])
    finally:
        backbone.train(was_training)
    return (len(dataset.train), *row), (len(dataset.val), *row)


def fill_features(
    prefix: Steps,
    backbone: Backbone,
    dataset: TransferDataset,
    config: TrialConfig,
    device: torch.device,
    precision: Precision,
    out: Features,
) -> None:
    """Run the prefix over both splits in order, in eval mode, without touching any RNG,
    writing each batch's rows into ``out`` (in its dtype) as they come."""
    transform = BatchTransform(backbone.mean, backbone.std).to(device)
    was_training = backbone.training
    backbone.eval()
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            for split, ordered in _ordered_splits(dataset).items():
                _, loader = make_loaders(
                    ordered,
                    input_size=config.input_size,
                    batch_size=max(1, min(256, _COMPUTE_PIXELS // config.input_size**2)),
                    seed=config.seed,
                    num_workers=config.num_workers,
                    pin_memory=device.type == "cuda",
                )
                target: Tensor = getattr(out, split)
                row = 0
                for images, _ in loader:
                    x = transform(images.to(device, non_blocking=True), train=False)
                    with precision.autocast():
                        part = prefix(x).float().cpu()
                    target[row : row + len(part)] = part.to(target.dtype)
                    row += len(part)
    finally:
        backbone.train(was_training)


def compute_features(
    prefix: Steps,
    backbone: Backbone,
    dataset: TransferDataset,
    config: TrialConfig,
    device: torch.device,
    precision: Precision,
) -> Features:
    """:func:`fill_features` into new float32 tensors (no cache)."""
    out = Features.empty(feature_shapes(prefix, backbone, dataset, config), torch.float32)
    fill_features(prefix, backbone, dataset, config, device, precision, out)
    return out


def feature_key(
    backbone: Backbone,
    prefix: Steps,
    cut: int,
    dataset: TransferDataset,
    config: TrialConfig,
    precision: Precision,
    cache: FeatureCache,
) -> FeatureKey:
    compute = f"{precision.device.type}-" + (
        str(precision.dtype).removeprefix("torch.") if precision.enabled else "float32"
    )
    return FeatureKey(
        backbone=backbone.name,
        weights_digest=prefix_digest(prefix),
        cut=cut,
        dataset=dataset.fingerprint,
        input_size=config.input_size,
        mean=tuple(float(m) for m in backbone.mean),
        std=tuple(float(s) for s in backbone.std),
        compute=compute,
        storage=cache.storage_dtype,
    )


def cached_features(
    key: FeatureKey,
    prefix: Steps,
    backbone: Backbone,
    dataset: TransferDataset,
    config: TrialConfig,
    device: torch.device,
    precision: Precision,
    cache: FeatureCache,
) -> Features | None:
    """``cache``'s features of ``key``, computed by ``prefix`` if absent; None when they fit
    neither of the cache's budgets (it logs which set it skipped, and why)."""
    return cache.get_or_compute(
        key,
        feature_shapes(prefix, backbone, dataset, config),
        lambda out: fill_features(prefix, backbone, dataset, config, device, precision, out),
    )


class _Rows(Dataset[Tensor]):
    """Row indices ``0..n-1``, fetched a whole batch at a time like the image datasets."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> Tensor:
        return torch.tensor([index])

    def __getitems__(self, indices: Sequence[int]) -> Tensor:
        return torch.as_tensor(indices, dtype=torch.int64)


def _as_batch(batch: Any) -> Any:
    return batch


def cached_feed(
    config: TrialConfig,
    dataset: TransferDataset,
    backbone: Backbone,
    device: torch.device,
    precision: Precision,
    cache: FeatureCache,
) -> Feed:
    """Cached features of the frozen blocks (below the fine-tuning phase's depth) and the
    suffix that trains on them; see the module doc for why the batch order is the same."""
    prefix, suffix = backbone.split(config.freeze_depth)
    cut = backbone.first_trainable_block(config.freeze_depth)
    key = feature_key(backbone, prefix, cut, dataset, config, precision, cache)
    features = cached_features(key, prefix, backbone, dataset, config, device, precision, cache)
    if features is None:  # fits neither budget: the cache said so; train through the images
        return loader_feed(config, dataset, backbone, device)
    train_x, val_x = features.train, features.val
    if device.type != "cpu" and features.nbytes <= _ON_DEVICE_BYTES:
        train_x, val_x = train_x.to(device), val_x.to(device)
    train_y = dataset.train.labels.to(device, torch.int64)
    val_y = dataset.val.labels.to(device, torch.int64)
    generator = torch.Generator().manual_seed(config.seed)
    sampler = balanced_sampler(dataset.train.labels, generator) if config.balanced_sampler else None
    train_rows = DataLoader(
        _Rows(len(train_y)),
        batch_size=config.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        generator=generator,
        collate_fn=_as_batch,
        drop_last=_drop_last(config, dataset),
    )
    val_rows = DataLoader(
        _Rows(len(val_y)), batch_size=config.batch_size, shuffle=False, collate_fn=_as_batch
    )

    def batches(rows: DataLoader, x: Tensor, y: Tensor) -> Batches:
        for index in rows:
            index_x = index.to(x.device)
            yield (
                x[index_x].to(device, torch.float32, non_blocking=True),
                y[index.to(y.device)],
            )

    return Feed(
        suffix,
        lambda: batches(train_rows, train_x, train_y),
        lambda: batches(val_rows, val_x, val_y),
        len(train_rows),
        cached=True,
    )
