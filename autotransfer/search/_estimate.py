"""Before the first trial: how long a trial and the whole search will take, measured.

A user with 300-pixel photographs on a laptop needs to know before the search starts whether
it takes minutes or a night. The estimate trains the first configuration for two epochs on a
few batches of the real data, the way a trial trains it (the same feed, with the feature
cache when the trial would use it, in a folder of its own), and scales by the number of
images: epoch 1 holds the cache's one-off feature pass plus an epoch, epoch 2 an epoch alone.
It is an estimate: small batches time less steadily than a whole epoch, and trials at other
depths cost more or less than this one.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from typing import Any

from autotransfer.data import TransferDataset, stratified_subset
from autotransfer.finetune import EpochMetrics, fit
from autotransfer.search._prepared import PreparedSearch
from autotransfer.space import fit_to_space

SAMPLE_BATCHES = 3  # training batches in the sample (plus one of validation)


@dataclass(frozen=True)
class Estimate:
    """A trial's and the search's expected wall time, and what they were measured on."""

    freeze_depth: int
    epochs: int
    images: int
    sample_images: int
    measured_s: float
    trial_s: float
    search_s: float
    search_basis: str

    def line(self) -> str:
        return (
            f"estimate: about {_duration(self.trial_s)} a trial (k = {self.freeze_depth}, "
            f"{self.epochs} epochs over {self.images:,} images; timed on {self.sample_images} "
            f"images in {self.measured_s:.1f} s), about {_duration(self.search_s)} for the "
            f"search ({self.search_basis})"
        )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _sample(dataset: TransferDataset, batch: int) -> TransferDataset:
    train = stratified_subset(
        dataset.train.labels.numpy(),
        min(len(dataset.train), SAMPLE_BATCHES * batch),
        0,
        what="estimate",
    )
    val = stratified_subset(
        dataset.val.labels.numpy(), min(len(dataset.val), batch), 0, what="estimate"
    )
    return dataclasses.replace(
        dataset,
        name=f"{dataset.name}-estimate",
        train=dataset.train.subset(train),
        val=dataset.val.subset(val),
        test=None,
    )


def estimate(p: PreparedSearch, params: dict[str, Any]) -> Estimate:
    """Time two epochs of ``params`` (sampled parameters, e.g. the first seed's) on a sample
    of the data and scale them to the whole data and the search's budget."""
    request = p.request
    # what the study would record of the seed: its values of the space's parameters
    full = p.trial_config(fit_to_space(p.spec, p.blocks, params))
    config = full.model_copy(update={"epochs": 2, "lp_ft_epochs": 0, "warmup_epochs": 0.0})
    sample = _sample(p.dataset, config.batch_size)
    times: list[float] = []

    def timed(m: EpochMetrics) -> None:
        times.append(m.elapsed_s)

    with tempfile.TemporaryDirectory(prefix="autotransfer-estimate-") as folder:
        fit(config, sample, reporter=timed, cache=request.feature_cache(folder))
    epoch_s = max(times[1] - times[0], 1e-6)
    once_s = max(times[0] - epoch_s, 0.0)  # the cache's feature pass (0 without the cache)
    scale = (len(p.dataset.train) + len(p.dataset.val)) / (len(sample.train) + len(sample.val))
    trial_s = (once_s + full.epochs * epoch_s) * scale
    budget = p.spec.budget
    if budget.stop == "settled" and budget.budget_runs:
        search_s = budget.budget_runs * trial_s
        basis = f"it stops within {budget.budget_runs:g} runs"
    else:
        search_s, basis = budget.trials * trial_s, f"{budget.trials} trials, fewer epochs if pruned"
    if budget.timeout_s is not None and budget.timeout_s < search_s:
        search_s, basis = budget.timeout_s, "its timeout"
    return Estimate(
        freeze_depth=full.freeze_depth,
        epochs=full.epochs,
        images=len(p.dataset.train) + len(p.dataset.val),
        sample_images=len(sample.train) + len(sample.val),
        measured_s=times[-1],
        trial_s=trial_s,
        search_s=search_s,
        search_basis=basis,
    )
