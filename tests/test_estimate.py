"""The estimate printed before the first trial: measured on the real data, scaled honestly."""

from __future__ import annotations

from pathlib import Path

import pytest

from autotransfer.search import SearchRequest, estimate, prepare

TINY = "synthetic:classes=3,per_class=40,size=16,difficulty=0.2,shift=0.0"


@pytest.mark.parametrize(
    ("stop", "basis"), [("settled", "within 2.5 runs"), ("trials", "5 trials")]
)
def test_the_estimate_times_the_first_configuration_and_scales_to_the_search(
    tmp_path: Path, stop: str, basis: str
) -> None:
    request = SearchRequest(
        dataset=TINY,
        space="small_data",
        stop=stop,
        trials=5,
        max_epochs=3,
        input_size=32,
        storage=f"sqlite:///{tmp_path}/e.db",
        device="cpu",
    )
    p = prepare(request)
    e = estimate(p, {"freeze_depth": 2, "base_lr": 0.05, "epochs": 99})  # epochs: not a param
    assert e.freeze_depth == 2 and e.epochs == 3
    assert e.images == len(p.dataset.train) + len(p.dataset.val)
    assert 0 < e.sample_images <= e.images
    assert e.measured_s > 0 and e.trial_s > 0
    runs = 2.5 if stop == "settled" else 5
    assert e.search_s == pytest.approx(runs * e.trial_s)
    line = e.line()
    assert line.startswith("estimate: about ") and "k = 2" in line and basis in line
    assert not list(tmp_path.glob("*features*"))  # timed in a folder of its own
