"""The real app over HTTP: uvicorn in a subprocess, a worker process, an httpx client."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from pydantic import ValidationError
from service_helpers import KEY, OTHER_KEY, TINY, serve, service_env, spawn, stop, wait_for

from autotransfer import record
from service.settings import Settings

AUTH = {"Authorization": f"Bearer {KEY}"}
SLOW_SPEC = {
    "name": "slow_for_cancel",
    "parameters": {
        "freeze_depth": {"type": "depth", "fraction": [0.6, 1.0]},
        "base_lr": {"type": "float", "low": 0.003, "high": 0.1, "log": True},
    },
    "budget": {"trials": 20, "max_epochs": 5, "pruner": {"type": "none"}},
}
# uncached deep fine-tuning, so each epoch takes seconds and a cancel lands mid-trial
SLOW = {
    "dataset": "synthetic:classes=3,per_class=80,size=48",
    "spec": SLOW_SPEC,
    "input_size": 48,
    "recommend": False,
    "cache": False,
}


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A data root holding one real .npz, and outside it a FIFO that hangs whoever reads it."""
    base = tmp_path_factory.mktemp("service")
    root, outside = base / "data", base / "outside"
    root.mkdir()
    outside.mkdir()
    rng = np.random.default_rng(0)
    np.savez(
        root / "tiny.npz",
        x=rng.integers(0, 255, size=(24, 16, 16, 3), dtype=np.uint8),
        y=np.repeat(np.arange(3), 8),
    )
    os.mkfifo(outside / "trap.npz")
    (outside / "folder").mkdir()
    (root / "escape.npz").symlink_to(outside / "trap.npz")
    (root / "escape_dir").symlink_to(outside / "folder")
    return {"base": base, "root": root, "outside": outside}


@pytest.fixture(scope="module")
def service(layout: dict[str, Path]) -> Iterator[dict[str, Any]]:
    env = service_env(
        f"sqlite:///{layout['base'] / 'service.db'}",
        api_keys=f"{KEY},{OTHER_KEY}",
        data_roots=str(layout["root"]),
        max_trials=50,
        warm_catalog="false",  # the backbone table costs ~30 s of CPU: checked in -m slow
        heartbeat_s=0.5,
        poll_s=0.3,
    )
    log = layout["base"] / "service.log"
    worker = spawn(["worker"], env, layout["base"] / "worker.log")
    try:
        with (
            serve(env, log, "--no-worker") as base,
            httpx.Client(base_url=base, timeout=30) as client,
        ):
            yield {"client": client, "base": base, "env": env}
    finally:
        stop(worker)


def _client(service: dict[str, Any]) -> httpx.Client:
    return service["client"]


def _submit(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/v1/studies", json=body, headers=AUTH)
    assert r.status_code == 202, r.text
    return r.json()


def _state(client: httpx.Client, job_id: str) -> dict[str, Any]:
    r = client.get(f"/v1/studies/{job_id}", headers=AUTH)
    assert r.status_code == 200, r.text
    return r.json()


def test_health_and_readiness(service: dict[str, Any]) -> None:
    client = _client(service)
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz").json()
    assert ready == {"status": "ok", "checks": {"job_store": "ok", "optuna_storage": "ok"}}


def test_keys_are_required_and_checked(service: dict[str, Any]) -> None:
    client = _client(service)
    r = client.post("/v1/studies", json=TINY)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = client.post("/v1/studies", json=TINY, headers={"Authorization": "Bearer wrong-key"})
    assert r.status_code == 403
    assert client.get("/v1/studies").status_code == 401
    assert client.get("/v1/backbones", headers={"Authorization": "Bearer nope"}).status_code == 403
    r = client.get("/v1/studies", headers={"Authorization": f"Bearer {OTHER_KEY}"})
    assert r.status_code == 200


NO_SPACE = {k: v for k, v in TINY.items() if k != "space"}


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({**TINY, "trials": 0}, "trials", "greater than or equal to 1"),
        ({**TINY, "trials": 51}, "trials", "AUTOTRANSFER_MAX_TRIALS"),
        ({**TINY, "colour": "red"}, "colour", "Extra inputs"),
        ({**TINY, "backbone": "resnet9000"}, "backbone", "GET /v1/backbones"),
        ({**TINY, "space": "nope"}, "space", "small_data"),
        ({**TINY, "space": "/etc/passwd"}, "space", "packaged"),
        ({**NO_SPACE, "spec": {"name": "x", "parameters": {"lr": 1}}}, "spec", "invalid"),
        ({**TINY, "dataset": "synthetic:classes=100,per_class=2000"}, "dataset", "MiB"),
        ({**TINY, "dataset": "synthetic:colour=1"}, "dataset", "not key=value"),
        ({k: v for k, v in TINY.items() if k != "dataset"}, "dataset", "Field required"),
    ],
)
def test_invalid_bodies_are_422_naming_the_field(
    service: dict[str, Any], body: dict[str, Any], field: str, words: str
) -> None:
    r = _client(service).post("/v1/studies", json=body, headers=AUTH)
    assert r.status_code == 422, r.text
    errors = r.json()["detail"]
    assert any(e["loc"][-1] == field and words in e["msg"] for e in errors), errors


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({**TINY, "spec": SLOW_SPEC}, "either space"),  # which would win was unclear
        ({**TINY, "trials": True}, "valid integer"),  # was read as 1
        ({**TINY, "trials": "3"}, "valid integer"),  # was read as 3
        ({**TINY, "max_epochs": 2.0}, "valid integer"),
    ],
)
def test_ambiguous_or_loosely_typed_bodies_are_refused(
    service: dict[str, Any], body: dict[str, Any], words: str
) -> None:
    r = _client(service).post("/v1/studies", json=body, headers=AUTH)
    assert r.status_code == 422, r.text
    assert any(words in e["msg"] for e in r.json()["detail"]), r.text


def test_traversal_is_refused_before_anything_is_read(
    service: dict[str, Any], layout: dict[str, Path]
) -> None:
    client = _client(service)
    before = client.get("/v1/studies", headers=AUTH).json()["count"]
    outside = layout["outside"]
    attempts = [
        ("dataset", "../outside/trap.npz"),
        ("dataset", "sub/../../outside/folder"),
        ("dataset", str(outside / "trap.npz")),  # absolute, outside the roots
        ("dataset", str(outside / "folder")),
        ("dataset", "escape.npz"),  # a symlink in the root pointing out
        ("dataset", str(layout["root"] / "escape_dir")),
        ("dataset", "~/secret.npz"),
        ("dataset", "fashion-mnist:../outside/folder"),
        ("weights", "../outside/trap.npz"),
        ("weights", str(outside / "trap.npz")),
    ]
    for field, value in attempts:
        # a read of the FIFO would block: the short timeout turns that into a failure
        r = client.post("/v1/studies", json={**TINY, field: value}, headers=AUTH, timeout=10)
        assert r.status_code == 422, (value, r.text)
        assert r.json()["detail"][0]["loc"] == ["body", field], r.text
    assert client.get("/v1/studies", headers=AUTH).json()["count"] == before
    # a file inside the root is accepted, by relative or absolute path
    ok = _submit(client, {**TINY, "dataset": "tiny.npz", "study_name": "inside-root"})
    assert _state(client, ok["id"])["request"]["dataset"] == str(layout["root"] / "tiny.npz")
    client.post(f"/v1/studies/{ok['id']}/cancel", headers=AUTH)


def test_submit_runs_and_reports_progress_then_result(service: dict[str, Any]) -> None:
    client = _client(service)
    body = {**TINY, "study_name": "api-tiny", "recommend": True}
    r = client.post("/v1/studies", json=body, headers=AUTH)
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert r.headers["location"] == f"/v1/studies/{accepted['id']}" == accepted["location"]
    assert accepted["state"] == "queued" and accepted["study_name"] == "api-tiny"
    seen: set[str] = set()

    def finished() -> dict[str, Any] | None:
        body = _state(client, accepted["id"])
        seen.add(body["state"])
        return body if body["state"] in ("succeeded", "failed", "cancelled") else None

    body = wait_for(finished, 120, "the study to finish", every=0.1)
    assert body["state"] == "succeeded", body
    assert "running" in seen
    progress = body["progress"]
    assert progress["requested"] == 2 and progress["finished"] == 2
    assert progress["complete"] + progress["pruned"] == 2 and progress["running"] == 0
    assert 0.0 <= body["best_value"] <= 1.0
    assert set(body["best_params"]) == set(body["chosen_params"]) >= {"freeze_depth"}
    assert 0 <= body["chosen_freeze_depth"] <= body["num_blocks"] == 17
    # the recommender seeded the study and its audit was recorded at the end
    rec, audit = body["recommendation"], body["recommendation_audit"]
    assert rec["backbone"] == "efficientnet_lite0" and 0 <= rec["freeze_depth"] <= 17
    assert audit is not None and "best_score" in audit and audit["metric"] == "accuracy"
    trials = client.get(f"/v1/studies/{accepted['id']}/trials", headers=AUTH).json()
    ran = [t["number"] for t in trials["data"] if t["state"] in ("complete", "pruned")]
    # seeds beyond the two requested trials are not left waiting forever: the ended study
    # fails them with a reason (a longer run of the same study enqueues them again)
    skipped = [t for t in trials["data"] if t["state"] == "fail"]
    assert ran == [0, 1] and progress["waiting"] == 0
    assert trials["count"] == 2 + len(skipped) and progress["skipped"] == len(skipped)
    assert progress["failed"] == 0  # a configuration that never ran did not fail
    assert all(t["user_attrs"]["outcome"] == "skipped" for t in skipped)
    first = trials["data"][0]
    assert first["intermediate_values"] == {"1": first["user_attrs"]["final_val_accuracy"]}
    assert "freeze_depth" in first["params"]
    assert record.TrialInfo.from_attrs(first["user_attrs"]).source == record.RECOMMENDER
    page = client.get(
        f"/v1/studies/{accepted['id']}/trials", params={"offset": 1, "limit": 1}, headers=AUTH
    ).json()
    assert page["count"] == trials["count"] and [t["number"] for t in page["data"]] == [1]


def test_list_is_paginated_and_filtered(service: dict[str, Any]) -> None:
    client = _client(service)
    made = [_submit(client, {**SLOW, "study_name": f"page-{i}"})["id"] for i in range(3)]
    for job_id in made:
        assert client.post(f"/v1/studies/{job_id}/cancel", headers=AUTH).status_code == 202
    wait_for(
        lambda: all(_state(client, j)["state"] == "cancelled" for j in made), 60, "cancellations"
    )
    seen: list[str] = []
    offset = 0
    while True:
        page = client.get(
            "/v1/studies",
            params={"state": "cancelled", "offset": offset, "limit": 2},
            headers=AUTH,
        ).json()
        assert len(page["data"]) <= 2
        assert all(s["state"] == "cancelled" for s in page["data"])
        seen += [s["id"] for s in page["data"]]
        offset += 2
        if offset >= page["count"]:
            break
    assert set(made) <= set(seen) and len(seen) == len(set(seen)) == page["count"]
    assert seen.index(made[2]) < seen.index(made[0])  # newest first
    assert client.get("/v1/studies", params={"limit": 0}, headers=AUTH).status_code == 422
    assert client.get("/v1/studies", params={"state": "x"}, headers=AUTH).status_code == 422


def test_cancel_stops_the_running_trial_and_delete_waits(service: dict[str, Any]) -> None:
    client = _client(service)
    job = _submit(client, {**SLOW, "study_name": "to-cancel"})

    def mid_trial() -> bool:
        trials = client.get(
            f"/v1/studies/{job['id']}/trials", params={"state": "running"}, headers=AUTH
        ).json()["data"]
        return bool(trials and trials[0]["intermediate_values"])

    wait_for(mid_trial, 120, "a trial with at least one epoch")
    r = client.delete(f"/v1/studies/{job['id']}", headers=AUTH)
    assert r.status_code == 409 and "cancel it first" in r.json()["detail"]
    r = client.post(f"/v1/studies/{job['id']}/cancel", headers=AUTH)
    assert r.status_code == 202 and r.json()["cancel_requested"] is True
    body = wait_for(
        lambda: (b := _state(client, job["id"]))["state"] == "cancelled" and b, 60, "cancel"
    )
    assert body["progress"]["running"] == 0 and body["progress"]["finished"] < 20
    trials = client.get(
        f"/v1/studies/{job['id']}/trials", params={"state": "fail"}, headers=AUTH
    ).json()["data"]
    # the trial running at the cancel stopped at its next epoch, before its 5 epochs
    assert any(t["user_attrs"]["outcome"] == "cancelled" for t in trials), trials
    assert all(t["user_attrs"]["epochs_run"] < 5 for t in trials)
    again = client.post(f"/v1/studies/{job['id']}/cancel", headers=AUTH)
    assert again.status_code == 200 and again.json()["state"] == "cancelled", again.text
    assert client.delete(f"/v1/studies/{job['id']}").status_code == 401
    assert client.delete(f"/v1/studies/{job['id']}", headers=AUTH).status_code == 204
    assert client.get(f"/v1/studies/{job['id']}", headers=AUTH).status_code == 404
    assert client.post(f"/v1/studies/{job['id']}/cancel", headers=AUTH).status_code == 404


def test_openapi_has_examples_for_every_body(service: dict[str, Any]) -> None:
    schema = _client(service).get("/openapi.json").json()
    bodies = [
        op["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
        for path in schema["paths"].values()
        for op in path.values()
        if "requestBody" in op
    ]
    assert "StudyCreate" in bodies
    for name in bodies:
        assert schema["components"]["schemas"][name]["examples"], name


def test_dashboard_needs_a_key_and_the_login_sets_a_cookie(service: dict[str, Any]) -> None:
    client = _client(service)
    r = client.get("/dashboard")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
    assert client.get("/api/studies").status_code == 401
    bad = base64.b64encode(b"me:wrong-key").decode()
    assert client.get("/dashboard", headers={"Authorization": f"Basic {bad}"}).status_code == 401
    good = base64.b64encode(f"me:{KEY}".encode()).decode()
    r = client.get("/dashboard", headers={"Authorization": f"Basic {good}"})
    assert r.status_code == 200 and "Optuna Dashboard" in r.text
    r = client.get("/static/bundle.js", headers=AUTH)  # also without Accept-Encoding
    assert r.status_code == 200
    with httpx.Client(base_url=service["base"], timeout=30) as browser:
        assert browser.post("/login", data={"key": "wrong"}).status_code == 403
        r = browser.post("/login", data={"key": KEY})
        assert r.status_code == 303 and r.headers["location"] == "/dashboard"
        studies = browser.get("/api/studies")
        assert studies.status_code == 200
        assert "study_summaries" in studies.json()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "AUTOTRANSFER_API_KEYS is empty"),
        ({"AUTOTRANSFER_API_KEYS": "short, also-short"}, "key #1, key #2 shorter than 16"),
    ],
)
def test_settings_refuse_insecure_defaults(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name in [k for k in os.environ if k.startswith("AUTOTRANSFER_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        Settings()
    monkeypatch.setenv("AUTOTRANSFER_DEV", "1")
    assert Settings().dev  # development mode may run without keys
    monkeypatch.setenv("AUTOTRANSFER_DEV", "0")
    monkeypatch.setenv("AUTOTRANSFER_API_KEYS", f" {KEY} ,{OTHER_KEY},")
    monkeypatch.setenv("AUTOTRANSFER_DATA_ROOTS", "/srv/a,/srv/b")
    settings = Settings()
    assert settings.api_keys == [KEY, OTHER_KEY]
    assert settings.data_roots == [Path("/srv/a"), Path("/srv/b")]


def test_server_refuses_to_start_without_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from autotransfer.cli import app

    for name in [k for k in os.environ if k.startswith("AUTOTRANSFER_")]:
        monkeypatch.delenv(name)
    result = CliRunner().invoke(app, ["serve", "--port", "1"])
    assert result.exit_code == 2, result.output
    assert "AUTOTRANSFER_API_KEYS is empty" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_recommendation_alone(service: dict[str, Any], layout: dict[str, Path]) -> None:
    client = _client(service)
    body = {
        "dataset": "synthetic:classes=3,per_class=20,size=32",
        "input_size": 32,
        "sample_size": 32,
    }
    assert client.post("/v1/recommendations", json=body).status_code == 401
    r = client.post("/v1/recommendations", json=body, headers=AUTH, timeout=120)
    assert r.status_code == 200, r.text
    rec = r.json()
    assert rec["backbone"] == "efficientnet_lite0" and rec["num_blocks"] == 17
    assert 0 <= rec["freeze_depth"] <= 17 and rec["seeds"] and rec["batch_size"] == 64
    r = client.post("/v1/recommendations", json={**body, "batch_size": 32}, headers=AUTH)
    assert r.status_code == 200 and r.json()["base_lr"] == pytest.approx(rec["base_lr"] / 2)
    r = client.post("/v1/recommendations", json={**body, "batch_size": 0}, headers=AUTH)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "batch_size"]
    r = client.post(
        "/v1/recommendations",
        json={**body, "dataset": str(layout["outside"] / "trap.npz")},
        headers=AUTH,
        timeout=10,
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "dataset"]
    r = client.post("/v1/recommendations", json={**body, "budget": "lavish"}, headers=AUTH)
    assert r.status_code == 422


def test_search_spaces(service: dict[str, Any]) -> None:
    client = _client(service)
    spaces = client.get("/v1/search-spaces", headers=AUTH).json()
    assert {"default", "small_data"} <= {s["name"] for s in spaces["data"]}
    assert spaces["count"] == len(spaces["data"])
    one = client.get("/v1/search-spaces/small_data", headers=AUTH).json()
    assert "freeze_depth" in one["spec"]["parameters"] and one["description"]
    assert client.get("/v1/search-spaces/nope", headers=AUTH).status_code == 404


def test_a_study_deleted_in_the_dashboard_shows_as_missing_on_its_job(
    service: dict[str, Any],
) -> None:
    client = _client(service)
    job = _submit(client, {**TINY, "study_name": "deleted-behind"})
    wait_for(lambda: _state(client, job["id"])["state"] == "succeeded", 120, "the job to succeed")
    assert _state(client, job["id"])["study_missing"] is False
    studies = client.get("/api/studies", headers=AUTH).json()["study_summaries"]
    (study_id,) = [s["study_id"] for s in studies if s["study_name"] == "deleted-behind"]
    gone = client.delete(f"/api/studies/{study_id}", headers=AUTH)  # optuna-dashboard's route
    assert gone.status_code in (200, 204), gone.text
    body = _state(client, job["id"])
    assert body["state"] == "succeeded" and body["study_missing"] is True
    assert body["progress"]["finished"] == 0 and body["best_value"] is None


def test_the_kept_model_and_its_config_download_behind_the_keys(
    service: dict[str, Any],
) -> None:
    import io

    import torch

    client = _client(service)
    job = _submit(client, {**TINY, "study_name": "keeps-its-model"})
    body = wait_for(
        lambda: (b := _state(client, job["id"]))["state"] == "succeeded" and b, 120, "success"
    )
    assert body["stopped"] == "trials" and "the 2 requested trials" in body["stop_reason"], body
    model = body["model"]
    assert model["trial"] == body["chosen_trial"]
    assert body["best_value"] - 0.005 - 1e-9 <= model["score"] <= body["best_value"]
    assert client.get(model["weights"]).status_code == 401  # behind the read key
    weights = client.get(model["weights"], headers=AUTH)
    assert weights.status_code == 200, weights.text
    assert "attachment" in weights.headers["content-disposition"]
    state = torch.load(io.BytesIO(weights.content), weights_only=True)
    assert any(name.endswith("weight") for name in state)
    config = client.get(model["config"], headers=AUTH).json()
    assert config["trial"] == model["trial"]
    assert config["config"]["freeze_depth"] == body["chosen_freeze_depth"]
    missing = _submit(client, {**SLOW, "study_name": "no-model-yet"})
    assert client.get(f"/v1/studies/{missing['id']}/model", headers=AUTH).status_code == 404
    client.post(f"/v1/studies/{missing['id']}/cancel", headers=AUTH)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dataset", "a" * 300),
        ("dataset", "sub/" + "a" * 300 + ".npz"),  # a path: the file system refuses the name
        ("weights", "b" * 300 + ".pth"),
    ],
)
def test_names_too_long_for_the_file_system_are_422_not_500(
    service: dict[str, Any], field: str, value: str
) -> None:
    client = _client(service)
    for route, body in (
        ("/v1/studies", {**TINY, field: value}),
        ("/v1/recommendations", {"dataset": "digits", field: value}),
    ):
        r = client.post(route, json=body, headers=AUTH)
        assert r.status_code == 422, (route, r.status_code, r.text[:500])
        assert any(e["loc"][-1] == field for e in r.json()["detail"]), r.text[:500]
