"""Issue 21's findings, over real HTTP against ``autotransfer serve`` and a worker on
PostgreSQL: datasets that link out of the data roots, labels that would size a class list by
their largest value, ids that are no job id, ``/config`` of a study that searched the
backbone, keys sent in a query string, and bare dataset names."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from service_helpers import KEY, serve, service_env, spawn, stop, wait_for

AUTH = {"Authorization": f"Bearer {KEY}"}
PROBE = {"input_size": 32, "sample_size": 16}


def _images(folder: Path, count: int, colour: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(colour)
    for i in range(count):
        pixels = rng.integers(0, 255, size=(24, 24, 3), dtype=np.uint8)
        pixels[..., colour % 3] = 200
        Image.fromarray(pixels).save(folder / f"{i}.png")


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A data root with a clean folder, folders that link out (a class folder, one image), a
    folder whose links stay inside the root, a link loop, and .npz files that would blow up."""
    base = tmp_path_factory.mktemp("hardening")
    root, outside = base / "data", base / "outside"
    for name in ("a", "b"):
        _images(root / "good" / name, 8, ord(name))
        _images(outside / "elsewhere" / name, 8, ord(name) + 1)
    # a class folder that is a link out of the root
    (root / "linked_class").mkdir()
    _images(root / "linked_class" / "a", 8, 1)
    (root / "linked_class" / "b").symlink_to(outside / "elsewhere" / "b")
    # one image that is a link out, deep in an ordinary class folder
    _images(root / "linked_file" / "a", 8, 2)
    _images(root / "linked_file" / "b" / "nested", 7, 3)
    (root / "linked_file" / "b" / "nested" / "7.png").symlink_to(
        outside / "elsewhere" / "b" / "0.png"
    )
    # links that stay inside the root, and a loop: accepted
    (root / "inner_links").mkdir()
    (root / "inner_links" / "a").symlink_to(root / "good" / "a")
    (root / "inner_links" / "b").symlink_to(root / "good" / "b")
    (root / "inner_links" / "b" / "loop").symlink_to(root / "inner_links")
    # labels {0, 2**40}: a class list sized by the largest label would need terabytes
    np.savez(
        root / "huge_labels.npz",
        x=np.zeros((16, 8, 8), dtype=np.uint8),
        y=np.array([0, 2**40] * 8, dtype=np.int64),
    )
    # a few kB on disk, 4 MiB of zeros once loaded (the server's limit is set to 1 MiB)
    np.savez_compressed(
        root / "zeros.npz", x=np.zeros((64, 256, 256), np.uint8), y=np.arange(64) % 2
    )
    return {"base": base, "root": root, "outside": outside}


@pytest.fixture(scope="module")
def postgres_db() -> Iterator[str]:
    """One throw-away database for the module's server (the conftest fixture is per test)."""
    import psycopg
    from conftest import PG_HOST, PG_PORT, PG_USER, _admin_connect

    name = f"autotransfer_test_{uuid.uuid4().hex[:12]}"
    try:
        with _admin_connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        reason = f"no PostgreSQL server answers at {PG_HOST}:{PG_PORT} ({exc})"
        if os.environ.get("AUTOTRANSFER_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with _admin_connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def service(layout: dict[str, Path], postgres_db: str) -> Iterator[dict[str, Any]]:
    env = service_env(
        postgres_db,
        api_keys=KEY,
        data_roots=str(layout["root"]),
        artifacts_dir=str(layout["base"] / "artifacts"),
        max_dataset_bytes=1024**2,
        warm_catalog="false",
        heartbeat_s=0.5,
        poll_s=0.3,
    )
    worker = spawn(["worker"], env, layout["base"] / "worker.log")
    log = layout["base"] / "service.log"
    try:
        with serve(env, log, "--no-worker") as base, httpx.Client(base_url=base, timeout=120) as c:
            yield {"client": c, "log": log}
    finally:
        stop(worker)


def _refused(r: httpx.Response, *words: str) -> str:
    assert r.status_code == 422, r.text
    message = " ".join(e["msg"] for e in r.json()["detail"])
    for word in words:
        assert word in message, message
    return message


@pytest.mark.parametrize(
    ("folder", "entry"), [("linked_class", "linked_class/b"), ("linked_file", "nested/7.png")]
)
def test_a_folder_that_links_out_of_the_roots_is_refused(
    service: dict[str, Any], layout: dict[str, Path], folder: str, entry: str
) -> None:
    client = service["client"]
    path = str(layout["root"] / folder)
    r = client.post("/v1/recommendations", json={"dataset": path, **PROBE}, headers=AUTH)
    message = _refused(r, entry, "outside the server's data roots", "copy the files")
    assert str(layout["outside"]) in message
    r = client.post(
        "/v1/studies", json={"dataset": path, "space": "small_data", "trials": 1}, headers=AUTH
    )
    _refused(r, entry, "outside the server's data roots")


def test_links_inside_the_roots_and_link_loops_are_followed(service: dict[str, Any]) -> None:
    client = service["client"]
    for ref in ("inner_links", "good"):  # a bare name is a path in the first root
        r = client.post("/v1/recommendations", json={"dataset": ref, **PROBE}, headers=AUTH)
        assert r.status_code == 200, r.text
        assert r.json()["profile"]["num_classes"] == 2, r.text
    r = client.post("/v1/studies", json={"dataset": "good", "trials": 1}, headers=AUTH)
    assert r.status_code == 202, r.text
    client.post(f"/v1/studies/{r.json()['id']}/cancel", headers=AUTH)
    r = client.post("/v1/recommendations", json={"dataset": "nothing_here", **PROBE}, headers=AUTH)
    _refused(r, "'nothing_here'", "neither a built-in dataset", "digits")


def test_labels_far_beyond_the_images_are_422_and_the_api_lives(
    service: dict[str, Any], layout: dict[str, Path]
) -> None:
    client = service["client"]
    path = str(layout["root"] / "huge_labels.npz")
    r = client.post("/v1/recommendations", json={"dataset": path, **PROBE}, headers=AUTH)
    _refused(r, "labels must be 0..K-1; found 2 distinct values up to 1099511627776")
    assert client.get("/healthz").status_code == 200


def test_an_archive_too_large_once_loaded_is_refused_by_its_headers(
    service: dict[str, Any], layout: dict[str, Path]
) -> None:
    client = service["client"]
    path = str(layout["root"] / "zeros.npz")
    assert (layout["root"] / "zeros.npz").stat().st_size < 100 * 1024
    for route, extra in (("/v1/recommendations", PROBE), ("/v1/studies", {"trials": 1})):
        r = client.post(route, json={"dataset": path, **extra}, headers=AUTH)
        _refused(r, "4.0 MiB once loaded", "AUTOTRANSFER_MAX_DATASET_BYTES=1,048,576")


@pytest.mark.parametrize("suffix", ["", "/trials", "/model", "/config", "/cancel", "DELETE"])
@pytest.mark.parametrize("job_id", ["a%00b", "%00", "x" * 300, "0" * 31 + "%00"])
def test_ids_that_are_not_job_ids_are_404_before_any_query(
    service: dict[str, Any], suffix: str, job_id: str
) -> None:
    client = service["client"]
    if suffix == "DELETE":
        r = client.delete(f"/v1/studies/{job_id}", headers=AUTH)
    elif suffix == "/cancel":
        r = client.post(f"/v1/studies/{job_id}/cancel", headers=AUTH)
    else:
        r = client.get(f"/v1/studies/{job_id}{suffix}", headers=AUTH)
    assert r.status_code == 404, r.text
    assert "no study job with id" in r.json()["detail"] and len(r.content) < 300


ZOO_SPEC = {
    "name": "two_backbones",
    "parameters": {
        "backbone": {
            "type": "categorical",
            "choices": ["efficientnet_lite0", "efficientnet_lite1"],
        },
        "freeze_depth": {"type": "depth", "fraction": [0.0, 0.2]},
        "base_lr": {"type": "float", "low": 0.01, "high": 0.1, "log": True},
    },
    "budget": {"trials": 2, "max_epochs": 1, "pruner": {"type": "none"}, "stop": "trials"},
}


def test_config_of_a_study_that_searched_the_backbone(service: dict[str, Any]) -> None:
    """``/config`` serves the configuration the chosen trial trained with: its own backbone
    and input size (it rebuilt one, passing ``backbone`` twice: 500)."""
    client = service["client"]
    body = {
        "dataset": "synthetic:classes=3,per_class=12,size=36",
        "spec": ZOO_SPEC,
        "recommend": False,
        "study_name": "zoo-config",
    }
    r = client.post("/v1/studies", json=body, headers=AUTH)
    assert r.status_code == 202, r.text
    job = r.json()["id"]

    def ended() -> dict[str, Any] | None:
        state = client.get(f"/v1/studies/{job}", headers=AUTH).json()
        return state if state["state"] in ("succeeded", "failed", "cancelled") else None

    state = wait_for(ended, 240, "the backbone study to end", every=1)
    assert state["state"] == "succeeded", state
    r = client.get(f"/v1/studies/{job}/config", headers=AUTH)
    assert r.status_code == 200, r.text
    config = r.json()
    trials = client.get(f"/v1/studies/{job}/trials", headers=AUTH).json()["data"]
    chosen = trials[config["trial"]]
    assert config["config"]["backbone"] == chosen["params"]["backbone"] == state["chosen_backbone"]
    assert config["config"]["freeze_depth"] == chosen["params"]["freeze_depth"]
    assert config["config"]["base_lr"] == pytest.approx(chosen["params"]["base_lr"])
    assert config["config"]["input_size"] == chosen["user_attrs"]["inference"]["input_size"]


def test_a_key_in_the_query_string_stays_out_of_the_access_log(service: dict[str, Any]) -> None:
    client = service["client"]
    secret = "query-secret-0123456789"
    r = client.get("/v1/studies", params={"api_key": secret, "limit": 3}, headers=AUTH)
    assert r.status_code == 200
    r = client.get("/healthz", params={"token": secret})
    assert r.status_code == 200

    def logged() -> str | None:
        text = service["log"].read_text()
        return text if "/healthz?token=REDACTED" in text else None

    text = wait_for(logged, 10, "the access log lines")
    assert secret not in text
    assert "api_key=REDACTED&limit=3" in text
