"""From a submitted ``StudyCreate`` to the ``SearchRequest`` a worker runs, within the limits."""

from __future__ import annotations

from typing import Any

from autotransfer.backbones import list_backbones
from autotransfer.search import SearchRequest
from autotransfer.space import SearchSpec, SpecError, load_spec, packaged_specs, parse_spec
from service.datarefs import RefError, check_dataset, check_weights
from service.schemas import StudyCreate
from service.settings import Settings


def _spec(body: StudyCreate) -> SearchSpec:
    if body.spec is not None:
        try:
            return parse_spec(body.spec, source="spec")
        except SpecError as exc:
            raise RefError("spec", str(exc)) from None
    if body.space not in packaged_specs():
        raise RefError(
            "space",
            f"space={body.space!r} is not a packaged search space; use one of "
            f"{', '.join(packaged_specs())} or send the space inline as spec.",
        )
    return load_spec(body.space)


def validate_study(body: StudyCreate, settings: Settings) -> dict[str, Any]:
    """The body as the worker will run it (paths resolved, budget filled in), or ``RefError``.

    Limits from the settings cap trials, epochs and time; a study without a timeout gets
    the server's maximum.
    """
    roots = settings.resolved_roots
    if body.backbone not in list_backbones():
        raise RefError(
            "backbone",
            f"backbone={body.backbone!r} is not registered; GET /v1/backbones lists them.",
        )
    spec = _spec(body)
    budget = spec.budget
    trials = body.trials or budget.trials
    epochs = body.max_epochs or budget.max_epochs
    timeout = body.timeout_s or budget.timeout_s or settings.max_timeout_s
    for field, value, limit, env in (
        ("trials", trials, settings.max_trials, "MAX_TRIALS"),
        ("max_epochs", epochs, settings.max_epochs, "MAX_EPOCHS"),
        ("timeout_s", timeout, settings.max_timeout_s, "MAX_TIMEOUT_S"),
    ):
        if value > limit:
            raise RefError(
                field,
                f"{field}={value} is above this server's limit of {limit} "
                f"(AUTOTRANSFER_{env}); ask for less.",
            )
    resolved = body.model_copy(
        update={
            "dataset": check_dataset(body.dataset, roots, max_bytes=settings.max_dataset_bytes),
            "weights": check_weights(body.weights, roots),
            "trials": trials,
            "max_epochs": epochs,
            "timeout_s": timeout,
        }
    )
    return resolved.model_dump(mode="json")


def search_request(body: dict[str, Any], *, study_name: str, settings: Settings) -> SearchRequest:
    """The library request for a stored job. An inline spec travels as values inside the
    request, so every process and Ray node that runs a trial has it without any file."""
    if body.get("spec") is not None:  # a stored body also carries the default space name
        body = {key: value for key, value in body.items() if key != "space"}
    job = StudyCreate.model_validate(body)
    # checked again as the job starts: a link inside the folder may have changed since
    check_dataset(job.dataset, settings.resolved_roots, max_bytes=settings.max_dataset_bytes)
    inline = job.spec is not None
    options = job.model_dump(mode="json", exclude={"spec", "study_name", *(["space"] * inline)})
    return SearchRequest(
        **options,
        spec=parse_spec(job.spec, source="spec") if job.spec is not None else None,
        storage=settings.database_url,
        study_name=study_name,
        device=settings.device,
        threads=settings.threads,
        heartbeat_interval=settings.trial_heartbeat_s,
        grace_period=settings.trial_grace_s,
        artifacts_dir=str(settings.artifacts_dir) if settings.artifacts_dir else None,
    )
