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
from autotransfer.results import decide, summarize
from autotransfer.search import trial_config
from autotransfer.spec import SearchSpec
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
    decision = decide(study) if s.complete else None
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
        model=ModelPublic(
            trial=info.model["trial"],
            accuracy=info.model["accuracy"],
            weights=f"/v1/studies/{job.id}/model",
            config=f"/v1/studies/{job.id}/config",
        )
        if info.model
        else None,
        test=info.test,
    )


def chosen_config(study: optuna.Study) -> dict[str, Any] | None:
    """The chosen trial's whole training configuration, as that trial trained with it (what
    ``--export`` writes as best_config.yaml), or None before a trial completed."""
    info = record.read_study(study)
    decision = decide(study)
    if decision is None or info.spec is None:
        return None
    trial = study.trials[decision.chosen_trial]
    ran = record.read_trial(trial)
    if ran.config is not None:
        config = ran.config
    else:  # a trial stored before trials recorded their configuration: rebuild it
        params = dict(trial.params)
        spec = SearchSpec.model_validate(info.spec)
        config = trial_config(
            spec,
            {k: v for k, v in params.items() if k != "backbone"},
            backbone=str(params.get("backbone", ran.backbone or info.backbone or "")),
            weights=ran.weights or info.weights or "DEFAULT",
            input_size=ran.input_size or info.input_size or 224,
            seed=spec.budget.seed,
            device="auto",
        ).model_dump(mode="json")
    return {
        "study": study.study_name,
        "trial": decision.chosen_trial,
        "accuracy": decision.chosen_accuracy,
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
