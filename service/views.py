"""Read-side views over the Optuna storage for the API: a job's study, its trials."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from autotransfer import record
from autotransfer.results import summarize
from autotransfer.search import study_decision
from autotransfer.storage import StorageURL, open_storage
from service.db import Job
from service.schemas import ModelPublic, Progress, StudyBrief, StudyPublic, TrialPublic


@functools.lru_cache(maxsize=8)
def read_storage(url: str | StorageURL) -> BaseStorage:
    return open_storage(url)


def load_study(url: str | StorageURL, name: str) -> optuna.Study | None:
    try:
        return optuna.load_study(study_name=name, storage=read_storage(url))
    except KeyError:
        return None


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def brief(job: Job) -> StudyBrief:
    return StudyBrief.model_validate(job, from_attributes=True)


def study_public(job: Job, url: str | StorageURL) -> StudyPublic:
    """The job, and once its study exists, progress, best trial, decision, recommendation."""
    fields = brief(job).model_dump()
    request = json.loads(job.request)
    study = load_study(url, job.study_name)
    if study is None:  # not created yet, or deleted behind the job store's back
        return StudyPublic(
            **fields,
            request=request,
            progress=Progress(requested=request.get("trials")),
            study_missing=job.started_at is not None,
        )
    s = summarize(study)
    info = record.read_study(study)
    best_params = None
    if s.best_trial is not None:
        best_params = study.trials[s.best_trial].params
    decision = study_decision(study) if s.complete else None
    return StudyPublic(
        **fields,
        request=request,
        progress=Progress(
            requested=s.requested_trials or request.get("trials"),
            finished=s.complete + s.pruned,
            complete=s.complete,
            pruned=s.pruned,
            failed=s.failed,
            running=s.running,
            waiting=s.waiting,
            skipped=s.skipped,
        ),
        best_value=_finite(s.best_value),
        best_trial=s.best_trial,
        best_params=best_params,
        chosen_freeze_depth=decision.chosen_depth if decision else None,
        chosen_trial=decision.chosen_trial if decision else None,
        chosen_params=decision.chosen_params if decision else None,
        metric=decision.metric if decision else "accuracy",
        chosen_class_report=decision.chosen_class_report if decision else None,
        num_blocks=info.num_blocks,
        chosen_backbone=decision.chosen_backbone if decision else None,
        backbones=[dataclasses.asdict(r) for r in decision.by_backbone] or None
        if decision
        else None,
        backbone_ranking=info.backbone_ranking,
        recommendation=info.recommendation,
        recommendation_audit=info.recommendation_audit,
        stop_reason=info.stop_reason,
        input_size=info.input_size,
        metric_why=info.metric_why,
        size_decision=info.size_decision,
        stopped=info.stop.value if info.stop else None,
        model=ModelPublic(
            trial=info.model["trial"],
            score=info.model.get("score", info.model.get("accuracy")),
            metric=info.model.get("metric", decision.metric if decision else "accuracy"),
            weights=f"/v1/studies/{job.id}/model",
            config=f"/v1/studies/{job.id}/config",
        )
        if info.model
        else None,
        test=info.test,
    )


def trained_config(study: optuna.Study) -> dict[str, Any] | None:
    """The chosen trial's whole training configuration, as that trial stored it when it
    started (what ``--export`` writes as best_config.yaml): never rebuilt here. None before a
    trial completed."""
    info = record.read_study(study)
    decision = study_decision(study)
    if decision is None:
        return None
    config = record.read_trial(study.trials[decision.chosen_trial]).config
    if config is None:  # a trial stored before trials recorded what they trained with
        return None
    return {
        "study": study.study_name,
        "trial": decision.chosen_trial,
        "score": decision.chosen_score,
        "metric": decision.metric,
        "dataset": info.dataset,
        "config": config,
    }


def trial_public(t: FrozenTrial) -> TrialPublic:
    values = [v for v in (t.values or []) if math.isfinite(v)] or None
    return TrialPublic(
        number=t.number,
        state=t.state.name.lower(),
        value=values[0] if values else None,
        values=values,
        params=t.params,
        intermediate_values={
            step: v for step, v in t.intermediate_values.items() if math.isfinite(v)
        },
        user_attrs={k: t.user_attrs[k] for k in record.TRIAL_SHOWN if k in t.user_attrs},
        datetime_start=t.datetime_start,
        datetime_complete=t.datetime_complete,
    )


def trials_page(
    study: optuna.Study, *, state: str | None, offset: int, limit: int
) -> tuple[list[TrialPublic], int]:
    states = (TrialState[state.upper()],) if state else None
    trials = study.get_trials(deepcopy=False, states=states)
    return [trial_public(t) for t in trials[offset : offset + limit]], len(trials)
