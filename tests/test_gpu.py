"""CUDA paths (mixed precision, pinned memory, non-blocking copies, channels-last).

Marked ``gpu``: CI and the development machines have no GPU; run with ``pytest -m gpu`` on one.
"""

from __future__ import annotations

import pytest
import torch

from autotransfer.data import load_dataset
from autotransfer.finetune import Precision, TrialConfig, train_trial

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def _needs_cuda() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")


def test_amp_trial_on_cuda_learns() -> None:
    dataset = load_dataset("digits", seed=0, max_train=400, max_val=200)
    config = TrialConfig(freeze_depth=4, base_lr=0.05, epochs=2, input_size=32, device="cuda")
    result = train_trial(config, dataset)
    assert result.device.startswith("cuda")
    assert result.best_val_accuracy > 0.5


def test_precision_picks_bf16_or_scaled_fp16() -> None:
    precision = Precision(torch.device("cuda"), enabled=True)
    assert precision.enabled
    with precision.autocast():
        y = torch.ones(4, 4, device="cuda") @ torch.ones(4, 4, device="cuda")
    assert y.dtype == precision.dtype
    assert precision.scaler.is_enabled() == (precision.dtype == torch.float16)
