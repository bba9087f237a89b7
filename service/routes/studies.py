"""``/v1/studies``: submit, list, inspect, cancel and delete search jobs."""

from __future__ import annotations

import contextlib
import re
from typing import Annotated, Any, Literal

import optuna
from fastapi import APIRouter, HTTPException, Query, Response, status
from fastapi.responses import StreamingResponse

from autotransfer import record
from autotransfer.storage import artifact_store
from service import jobs
from service.datarefs import RefError
from service.db import Job, JobState
from service.deps import ReadKey, SessionDep, SettingsDep, WriteKey
from service.schemas import (
    Accepted,
    StudiesPublic,
    StudyCreate,
    StudyPublic,
    TrialsPublic,
)
from service.submit import validate_study
from service.views import (
    brief,
    load_study,
    read_storage,
    study_public,
    trained_config,
    trials_page,
)

router = APIRouter(prefix="/v1/studies", tags=["studies"])

Offset = Annotated[int, Query(ge=0, le=1_000_000)]
Limit = Annotated[int, Query(ge=1, le=100)]
JOB_ID = re.compile(r"[0-9a-f]{32}")
TrialState = Literal["running", "waiting", "complete", "pruned", "fail"]


def unprocessable(exc: RefError) -> HTTPException:
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        [{"loc": ["body", exc.field], "msg": str(exc), "type": "value_error"}],
    )


def _job(session: SessionDep, job_id: str) -> Job:
    # ids are uuid4 hex (jobs.create_job): anything else is no job, answered before any query
    # (a NUL byte in a query parameter is a database error on PostgreSQL)
    job = jobs.get_job(session, job_id) if JOB_ID.fullmatch(job_id) else None
    if job is None:
        shown = job_id if len(job_id) <= 64 else f"{job_id[:64]}…"
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no study job with id {shown!r}")
    return job


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    dependencies=[WriteKey],
    responses={409: {"description": "study_name already used"}},
)
def submit_study(
    body: StudyCreate, session: SessionDep, settings: SettingsDep, response: Response
) -> Accepted:
    """Queue a search; a worker runs it. Poll the returned location for progress."""
    try:
        job = jobs.create_job(session, validate_study(body, settings), body.study_name)
    except RefError as exc:
        raise unprocessable(exc) from None
    except jobs.JobConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    location = f"/v1/studies/{job.id}"
    response.headers["Location"] = location
    return Accepted(id=job.id, study_name=job.study_name, state=job.state, location=location)


@router.get("", response_model=StudiesPublic, dependencies=[ReadKey])
def list_studies(
    session: SessionDep,
    state: JobState | None = None,
    offset: Offset = 0,
    limit: Limit = 20,
) -> StudiesPublic:
    """Jobs, newest first, optionally only those in one state."""
    rows, count = jobs.list_jobs(session, state=state, offset=offset, limit=limit)
    return StudiesPublic(data=[brief(job) for job in rows], count=count)


@router.get("/{job_id}", response_model=StudyPublic, dependencies=[ReadKey])
def get_study(job_id: str, session: SessionDep, settings: SettingsDep) -> StudyPublic:
    """State, progress, best result, chosen freeze depth and the recommendation."""
    return study_public(_job(session, job_id), settings.database_url)


@router.get("/{job_id}/trials", response_model=TrialsPublic, dependencies=[ReadKey])
def get_trials(
    job_id: str,
    session: SessionDep,
    settings: SettingsDep,
    state: TrialState | None = None,
    offset: Offset = 0,
    limit: Limit = 20,
) -> TrialsPublic:
    """The study's trials in order, with parameters and per-epoch validation accuracy."""
    job = _job(session, job_id)
    study = load_study(settings.database_url, job.study_name)
    if study is None:
        return TrialsPublic(data=[], count=0)
    data, count = trials_page(study, state=state, offset=offset, limit=limit)
    return TrialsPublic(data=data, count=count)


@router.get(
    "/{job_id}/model",
    dependencies=[ReadKey],
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "torch state dict"},
        404: {"description": "the study kept no model (yet)"},
    },
)
def get_model(job_id: str, session: SessionDep, settings: SettingsDep) -> StreamingResponse:
    """The chosen trial's weights as the search trained them (its best epoch): a state dict
    for ``create_backbone(...).model.load_state_dict(torch.load(f, weights_only=True))``."""
    job = _job(session, job_id)
    study = load_study(settings.database_url, job.study_name)
    kept = record.read_study(study).model if study is not None else None
    if kept is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"study job {job_id} has kept no model: it has not ended, completed no trial, or "
            "ran with keep_model false",
        )
    store = artifact_store(settings.database_url, settings.artifacts_dir)
    reader = store.open_reader(kept["artifact_id"])
    name = f"{job.study_name}-trial{kept['trial']}-model.pt"
    return StreamingResponse(
        reader,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get(
    "/{job_id}/config",
    dependencies=[ReadKey],
    responses={404: {"description": "no trial has completed"}},
)
def get_config(job_id: str, session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    """The chosen trial's whole training configuration (what ``--export`` writes)."""
    job = _job(session, job_id)
    study = load_study(settings.database_url, job.study_name)
    config = trained_config(study) if study is not None else None
    if config is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"study job {job_id} has no completed trial yet"
        )
    return config


@router.post(
    "/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=StudyPublic,
    dependencies=[WriteKey],
    responses={
        200: {
            "description": "the job was already cancelled: nothing changed",
            "model": StudyPublic,
        },
        409: {"description": "the job already ended otherwise"},
    },
)
def cancel_study(
    job_id: str, session: SessionDep, settings: SettingsDep, response: Response
) -> StudyPublic:
    """Cancel a queued job now, or ask a running one to stop at its next epoch (202); a job
    already cancelled is answered 200 with its state."""
    if _job(session, job_id).state == JobState.cancelled:
        response.status_code = status.HTTP_200_OK
        return study_public(_job(session, job_id), settings.database_url)
    try:
        job = jobs.request_cancel(session, job_id)
    except jobs.JobConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return study_public(job, settings.database_url)


@router.delete(
    "/{job_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[WriteKey],
    responses={409: {"description": "the job is running"}},
)
def delete_study(job_id: str, session: SessionDep, settings: SettingsDep) -> Response:
    """Delete a job that is not running, and its Optuna study."""
    _job(session, job_id)
    try:
        job = jobs.delete_job(session, job_id)
    except jobs.JobConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    with contextlib.suppress(KeyError):  # a job that never started has no study
        optuna.delete_study(study_name=job.study_name, storage=read_storage(settings.database_url))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
