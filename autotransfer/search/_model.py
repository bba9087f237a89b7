"""Keep what was trained: the chosen trial's weights as an Optuna artifact of the study.

Every trial that may be kept saves its network after its best epoch into a staging folder
beside the artifacts (``<artifacts>/.staging/<study>/<trial>/model.pt``; on Ray the node
writes it there, so that folder must be shared with the driver, as the storage file is on
one machine). When the search ends, the engine uploads the chosen trial's file to the
artifact store, records which trial it is on the study (``StudyInfo.model``) and drops the
rest, so ``--export`` and the HTTP API hand over exactly the model the search measured, and
optuna-dashboard lists it on the study's page.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import download_artifact, upload_artifact

from autotransfer import record
from autotransfer.results import read_decision
from autotransfer.search._request import SearchRequest
from autotransfer.storage import artifact_store, artifacts_folder

log = logging.getLogger(__name__)

MODEL_FILE = "model.pt"


def _staging(request: SearchRequest, study_name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", study_name)
    # absolute: a Ray trial runs in a working folder of its own, where a path relative to
    # the driver's (the default sqlite:///autotransfer.db) would land its weights elsewhere
    folder = artifacts_folder(request.storage, request.artifacts_dir).resolve()
    return folder / ".staging" / safe


def staged_weights(request: SearchRequest, study_name: str, number: int) -> Path | None:
    """Where trial ``number`` saves its weights, or None when the request keeps no model."""
    if not request.keep_model:
        return None
    return _staging(request, study_name) / str(number) / MODEL_FILE


def keep_chosen(study: optuna.Study, request: SearchRequest) -> dict[str, Any] | None:
    """Upload the staged weights of the trial the engine's stored decision chose (once),
    record them on the study and drop the other staged weights; returns the study's
    ``model`` record."""
    if not request.keep_model:
        return None
    decision = read_decision(study)
    kept = record.read_study(study).model
    if decision is not None and (kept is None or kept.get("trial") != decision.chosen_trial):
        staged = staged_weights(request, study.study_name, decision.chosen_trial)
        if staged is not None and staged.is_file():
            chosen = study.trials[decision.chosen_trial]
            # a finished trial takes no more attributes: the study holds the artifact, and
            # its record names the trial
            artifact_id = upload_artifact(
                artifact_store=artifact_store(request.storage, request.artifacts_dir),
                file_path=str(staged),
                study_or_trial=study,
                mimetype="application/octet-stream",
            )
            kept = {
                "trial": chosen.number,
                "artifact_id": artifact_id,
                "file": MODEL_FILE,
                "score": decision.chosen_score,
                "metric": decision.metric,
            }
            record.write_study(study, model=kept)
        else:
            log.warning(
                "the weights of the chosen trial #%d were not staged at %s (another machine's "
                "folder?): no model kept; --export retrains it",
                decision.chosen_trial,
                staged,
            )
    shutil.rmtree(_staging(request, study.study_name), ignore_errors=True)
    return kept


def fetch_model(study: optuna.Study, request: SearchRequest, to: Path) -> dict[str, Any] | None:
    """Download the study's kept model to ``to`` (a file path); its record, or None when the
    study keeps none."""
    kept = record.read_study(study).model
    if kept is None:
        return None
    to.parent.mkdir(parents=True, exist_ok=True)
    download_artifact(
        artifact_store=artifact_store(request.storage, request.artifacts_dir),
        file_path=str(to),
        artifact_id=kept["artifact_id"],
    )
    return kept
