"""After a search: the kept model scored once on the test split it never saw.

The validation split chose the configuration and its best epoch, so its figure is the best
of many looks; the test figure is the one to quote. It is computed once per kept model,
from the weights the search kept (no retraining), and stored on the study
(``StudyInfo.test``), where the CLI report, the API and the model card read it.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path
from typing import Any

import optuna
import torch

from autotransfer import record
from autotransfer.backbones import create_backbone
from autotransfer.data import load_test_split
from autotransfer.finetune import evaluate
from autotransfer.search._model import fetch_model
from autotransfer.search._prepared import PreparedSearch

log = logging.getLogger(__name__)


def _source(p: PreparedSearch) -> str:
    if p.request.test_fraction is not None:
        return f"test_fraction {p.request.test_fraction:g} of the training split"
    return "the dataset's own test split"


def score_on_test(study: optuna.Study, p: PreparedSearch) -> dict[str, Any] | None:
    """Score the study's kept model on the test split and record it, once; None when the
    dataset has no test split or the study kept no model. A test split that cannot be
    read is recorded as ``{"error": …}``: the search's decision stands without it."""
    request = p.request
    info = record.read_study(study)
    kept = info.model
    if kept is None:
        return None
    if info.test is not None and info.test.get("trial") == kept["trial"]:
        return info.test  # scored already: once per kept model
    try:
        test = load_test_split(
            request.dataset,
            p.dataset,
            test_fraction=request.test_fraction,
            on_corrupt=request.on_corrupt,
        )
    except Exception as exc:  # a broken test split must not lose the search
        result: dict[str, Any] = {"trial": kept["trial"], "error": f"{type(exc).__name__}: {exc}"}
        record.write_study(study, test=result)
        log.warning("test split not scored: %s", result["error"])
        return result
    if test is None:
        return None
    config = p.config_of(study.trials[kept["trial"]])
    network = create_backbone(
        config.backbone,
        num_classes=len(p.dataset.class_names),
        weights="none",
        input_size=config.input_size,
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.pt"
        fetch_model(study, request, path)
        network.model.load_state_dict(torch.load(path, weights_only=True))
    scores, report = evaluate(network, config, dataclasses.replace(p.dataset, val=test))
    metric = p.spec.budget.metric
    result = {
        "trial": kept["trial"],
        "metric": metric,
        "score": scores.value(metric),
        "accuracy": scores.accuracy,
        "metrics": scores.to_dict(),
        "images": len(test),
        "class_report": report,
        "source": _source(p),
    }
    record.write_study(study, test=result)
    return result
