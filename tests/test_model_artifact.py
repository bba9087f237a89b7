"""Keep what was trained: the chosen trial's weights are an artifact that reproduces it."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch

from autotransfer import record
from autotransfer.backbones import create_backbone
from autotransfer.data import BatchTransform, make_loaders
from autotransfer.search import SearchRequest, Seed, export_decision, prepare, run_search
from autotransfer.search._model import fetch_model, staged_weights
from autotransfer.storage import artifacts_folder

TINY_DATA = "synthetic:classes=3,per_class=24,size=16,difficulty=0.2,shift=0.0"
SPACE = {
    "name": "keep",
    "parameters": {"freeze_depth": {"type": "depth", "blocks": [0, 1]}},
    "fixed": {"base_lr": 0.05, "batch_size": 16},
    "budget": {"trials": 2, "max_epochs": 3, "pruner": {"type": "none"}, "seed": 0},
}


@torch.no_grad()
def _accuracy(weights: Path, request: SearchRequest) -> float:
    """The validation accuracy of ``weights`` through the whole network, from the images."""
    p = prepare(request)
    net = create_backbone(
        request.backbone, num_classes=len(p.dataset.class_names), weights="none", input_size=32
    )
    net.model.load_state_dict(torch.load(weights, weights_only=True))
    net.eval()
    _, val = make_loaders(p.dataset, input_size=32, batch_size=64, seed=0)
    transform = BatchTransform(net.mean, net.std)
    correct = seen = 0
    for images, labels in val:
        correct += int((net(transform(images, train=False)).argmax(1) == labels).sum())
        seen += labels.numel()
    return correct / seen


def test_the_chosen_trials_weights_are_kept_and_reproduce_its_accuracy(tmp_path: Path) -> None:
    request = SearchRequest(
        dataset=TINY_DATA,
        spec=SPACE,
        input_size=32,
        storage=f"sqlite:///{tmp_path}/keep.db",
        study_name="keep",
        device="cpu",
        threads=1,
    )
    study = run_search(request, seeds=[Seed({"freeze_depth": 1}), Seed({"freeze_depth": 0})])
    kept = record.read_study(study).model
    assert kept is not None, "the ended search kept its chosen model"
    chosen = study.trials[kept["trial"]]
    assert kept["score"] == chosen.value and kept["metric"] == "accuracy"
    # an artifact of the study, which optuna-dashboard lists
    metas = optuna.artifacts.get_all_artifact_meta(study)
    assert [m.artifact_id for m in metas] == [kept["artifact_id"]]
    assert not (artifacts_folder(request.storage) / ".staging").joinpath("keep").exists()
    weights = tmp_path / "fetched.pt"
    fetch_model(study, request, weights)
    # the best epoch's network, evaluated afresh from the images (no cached features)
    assert abs(_accuracy(weights, request) - chosen.value) <= 1 / 15 + 1e-9  # one image of 15
    exported = export_decision(study, prepare(request), tmp_path / "export")
    assert not exported.retrained and exported.val_score == chosen.value
    assert exported.weights_path.read_bytes() == weights.read_bytes()


def test_trials_stage_their_weights_at_an_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the default storage is relative; a Ray trial runs in a working folder of its own
    monkeypatch.chdir(tmp_path)
    request = SearchRequest(storage="sqlite:///autotransfer.db")
    staged = staged_weights(request, "digits study", 3)
    assert staged is not None and staged.is_absolute()
    assert staged == tmp_path / "autotransfer-artifacts" / ".staging" / "digits_study" / "3" / (
        "model.pt"
    )
