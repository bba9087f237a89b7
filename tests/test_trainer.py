"""One real fine-tuning trial end to end: pretrained EfficientNet-Lite0 on digits, on CPU."""

from __future__ import annotations

import pytest

from autotransfer.data import TransferDataset, load_dataset
from autotransfer.finetune import EpochMetrics, TrialConfig, train_trial


@pytest.fixture(scope="module")
def digits_small() -> TransferDataset:
    return load_dataset("digits", seed=0, max_train=300, max_val=120)


def _config(**overrides: object) -> TrialConfig:
    base: dict[str, object] = dict(
        backbone="efficientnet_lite0",
        freeze_depth=2,
        base_lr=0.05,
        epochs=2,
        batch_size=32,
        input_size=32,
        seed=0,
        device="cpu",
    )
    base.update(overrides)
    return TrialConfig(**base)  # type: ignore[arg-type]


def test_trial_reports_every_epoch_and_learns(digits_small: TransferDataset) -> None:
    seen: list[EpochMetrics] = []
    result = train_trial(_config(epochs=3), digits_small, reporter=seen.append)
    assert [m.epoch for m in seen] == [1, 2, 3]
    assert result.history == seen
    assert result.epochs_run == 3
    assert result.best_val_accuracy == max(m.val_accuracy for m in seen)
    assert result.best_val_accuracy > 0.5, "pretrained Lite0 must beat chance (0.1) clearly"
    assert result.num_blocks == 17 and result.freeze_depth == 2
    assert 0 < result.trainable_parameters < result.total_parameters
    assert result.train_time_s > 0 and result.device == "cpu"


def test_same_seed_same_history_other_seed_differs(digits_small: TransferDataset) -> None:
    a = train_trial(_config(augment=True, dropout=0.2), digits_small)
    b = train_trial(_config(augment=True, dropout=0.2), digits_small)
    c = train_trial(_config(augment=True, dropout=0.2, seed=1), digits_small)
    strip = lambda r: [(m.train_loss, m.val_loss, m.val_accuracy) for m in r.history]  # noqa: E731
    assert strip(a) == strip(b)
    assert strip(a) != strip(c)


def test_lp_ft_trains_the_head_first_then_unfreezes(digits_small: TransferDataset) -> None:
    result = train_trial(_config(epochs=3, lp_ft_epochs=1, freeze_depth=4), digits_small)
    assert [m.phase for m in result.history] == ["lp", "ft", "ft"]
    lp, ft = result.history[0], result.history[1]
    assert lp.trainable_parameters < ft.trainable_parameters
    assert result.trainable_parameters == ft.trainable_parameters


def test_regularizers_and_adamw_run(digits_small: TransferDataset) -> None:
    result = train_trial(
        _config(
            optimizer="adamw",
            base_lr=1e-3,
            l2sp=0.01,
            label_smoothing=0.1,
            dropout=0.2,
            layer_decay=0.7,
            head_lr_mult=10.0,
            warmup_epochs=1.0,
            freeze_bn_stats=True,
        ),
        digits_small,
    )
    assert result.best_val_accuracy > 0.3


def test_reporter_exception_stops_the_trial(digits_small: TransferDataset) -> None:
    class Stop(Exception):
        pass

    def stop_after_first(m: EpochMetrics) -> None:
        raise Stop(m.epoch)

    with pytest.raises(Stop):
        train_trial(_config(epochs=3), digits_small, reporter=stop_after_first)
