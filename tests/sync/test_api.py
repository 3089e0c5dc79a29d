"""The sync endpoints: queue a push over HTTP against the real peer, follow it through the
sync worker, and read its status."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fhir_service.api import create_app
from fhir_service.settings import Settings
from fhir_service.storage import SqlStore
from fhir_service.sync import state
from tests.peer.process import Peer
from tests.sync.conftest import case_bundle, load_example
from tests.sync.fault_proxy import FaultProxy
from tests.sync.helpers import remote_all


def wait_for_end(
    client: TestClient, location: str, first: str = "queued"
) -> tuple[dict[str, Any], list[str]]:
    """Poll a run until it has ended; the run and the statuses seen on the way (from
    ``first``, the status the run was last seen in)."""
    seen = [first]
    deadline = time.monotonic() + 180
    while True:
        run: dict[str, Any] = client.get(location).json()
        if seen[-1] != run["status"]:
            seen.append(run["status"])
        if run["status"] not in ("queued", "running") or time.monotonic() > deadline:
            return run, seen
        time.sleep(0.05)


@pytest.fixture
def slow_peer(peer: Peer) -> Iterator[str]:
    """The peer behind a proxy that holds every request 0.5 s, so a run stays visibly
    ``running``; yields the proxy's FHIR base URL."""
    proxy = FaultProxy(peer.base_url.rsplit("/fhir", 1)[0], "delay", every=1, delay=0.5)
    proxy.start()
    try:
        yield f"http://127.0.0.1:{proxy.port}/fhir"
    finally:
        proxy.stop()


def test_a_push_goes_queued_running_succeeded(
    database_url: str, peer: Peer, slow_peer: str
) -> None:
    store = SqlStore.open(database_url)
    try:
        load_example(store)
    finally:
        store.close()
    settings = Settings(database_url=database_url, remote_url=slow_peer, auth_mode="open")
    with TestClient(create_app(settings)) as client:
        started = client.post("/sync/runs", json={"direction": "push"})
        assert started.status_code == 202
        location = started.headers["content-location"]
        assert started.json()["status"] == "queued"
        assert started.json()["attempts"] == 0
        run, seen = wait_for_end(client, location)
        listed = client.get("/sync/runs").json()["runs"]

    assert seen == ["queued", "running", "succeeded"]
    assert [r["id"] for r in listed] == [run["id"]]
    assert run["attempts"] == 1
    assert run["counts"]["created"] == len(case_bundle()["entry"])
    assert run["ended"] is not None
    assert len(remote_all(peer.base_url, "Patient")) == 1


def test_a_running_run_is_cancelled_over_http(
    database_url: str, peer: Peer, slow_peer: str
) -> None:
    """``DELETE /sync/runs/{id}`` cancels the run (202); it shows ``cancelled`` here and
    among the jobs of every kind (``GET /jobs``); a second ``DELETE`` is a 409."""
    store = SqlStore.open(database_url)
    try:
        load_example(store)
    finally:
        store.close()
    settings = Settings(database_url=database_url, remote_url=slow_peer, auth_mode="open")
    with TestClient(create_app(settings)) as client:
        location = client.post("/sync/runs", json={"direction": "push"}).headers["content-location"]
        deadline = time.monotonic() + 60
        while client.get(location).json()["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        cancelled = client.delete(location)
        again = client.delete(location)
        run = client.get(location).json()
        jobs = client.get("/jobs", params={"kind": "sync"}).json()["jobs"]
    assert cancelled.status_code == 202, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert again.status_code == 409
    assert again.json()["resourceType"] == "OperationOutcome"
    assert run["status"] == "cancelled" and run["ended"] is not None
    assert [(j["id"], j["kind"], j["state"]) for j in jobs] == [(run["id"], "sync", "cancelled")]


def test_a_run_that_cannot_reach_its_remote_fails_with_its_error(
    database_url: str, peer: Peer
) -> None:
    missing = peer.base_url.rsplit("/fhir", 1)[0] + "/no-fhir-here"
    settings = Settings(database_url=database_url, auth_mode="open", sync_remotes=[missing])
    with TestClient(create_app(settings)) as client:
        started = client.post("/sync/runs", json={"direction": "pull", "remote": missing})
        assert started.status_code == 202
        run, _ = wait_for_end(client, started.headers["content-location"])

    assert run["status"] == "failed"
    assert run["ended"] is not None
    assert [e["error"] for e in run["errors"]] == ["RemoteNotFound"]


def test_a_stopping_service_gives_its_run_back_and_the_next_one_ends_it(
    database_url: str, peer: Peer, slow_peer: str
) -> None:
    store = SqlStore.open(database_url)
    try:
        load_example(store)
        settings = Settings(database_url=database_url, remote_url=slow_peer, auth_mode="open")
        with TestClient(create_app(settings)) as client:
            location = client.post("/sync/runs", json={"direction": "push"}).headers[
                "content-location"
            ]
            deadline = time.monotonic() + 60
            while client.get(location).json()["status"] != "running":
                assert time.monotonic() < deadline
                time.sleep(0.05)
        run_id = location.rsplit("/", 1)[1]
        given_back = state.run(store, run_id)
        assert given_back is not None
        assert (given_back["status"], given_back["attempts"]) == ("queued", 1)

        with TestClient(create_app(settings)) as client:
            run, _ = wait_for_end(client, location)
    finally:
        store.close()

    assert (run["status"], run["attempts"]) == ("succeeded", 2)
    case_types = {e["resource"]["resourceType"] for e in case_bundle()["entry"]}
    on_remote = sum(len(remote_all(peer.base_url, t)) for t in case_types)
    assert on_remote == len(case_bundle()["entry"])


def test_bad_requests_are_4xx_outcomes(sqlite_url: str) -> None:
    settings = Settings(database_url=sqlite_url, remote_url=None, auth_mode="open")
    with TestClient(create_app(settings)) as client:
        for body, status in (
            ({"direction": "sideways"}, 400),
            ({"direction": "push"}, 400),
            ({"direction": "pull", "remote": "http://127.0.0.1:9/fhir", "types": "Patient"}, 400),
        ):
            response = client.post("/sync/runs", json=body)
            assert response.status_code == status
            assert response.json()["resourceType"] == "OperationOutcome"
        # A remote the operator did not configure is refused, so the service never
        # connects to a server a client names.
        unlisted = client.post("/sync/runs", json={"direction": "pull", "remote": "http://x/fhir"})
        assert unlisted.status_code == 400
        assert "FHIR_SERVICE_SYNC_REMOTES" in unlisted.json()["issue"][0]["diagnostics"]
        missing = client.get("/sync/runs/999")
        assert missing.status_code == 404
        assert missing.json()["resourceType"] == "OperationOutcome"
        bad = client.post("/sync/runs", content=b"{", headers={"content-type": "application/json"})
        assert bad.status_code == 400
        assert client.get("/sync/runs").json() == {"runs": []}
        too_many = client.get("/sync/runs", params={"_count": 1000})
        assert too_many.status_code == 400
        assert too_many.json()["resourceType"] == "OperationOutcome"
