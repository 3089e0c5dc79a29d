"""The sync endpoints: start a push over HTTP against the real peer and read its status."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from fhir_service.api import create_app
from fhir_service.settings import Settings
from fhir_service.storage import SqlStore
from tests.peer.process import Peer
from tests.sync.conftest import case_bundle, load_example
from tests.sync.helpers import remote_all


def test_start_push_and_read_its_status(sqlite_url: str, peer: Peer) -> None:
    store = SqlStore.open(sqlite_url)
    try:
        load_example(store)
    finally:
        store.close()
    settings = Settings(database_url=sqlite_url, remote_url=peer.base_url, auth_mode="open")
    with TestClient(create_app(settings)) as client:
        started = client.post("/sync/runs", json={"direction": "push"})
        assert started.status_code == 202
        location = started.headers["content-location"]
        assert started.json()["status"] == "running"
        deadline = time.monotonic() + 120
        run = client.get(location).json()
        while run["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.1)
            run = client.get(location).json()
        listed = client.get("/sync/runs").json()["runs"]

    assert [r["id"] for r in listed] == [run["id"]]
    assert run["status"] == "succeeded"
    assert run["counts"]["created"] == len(case_bundle()["entry"])
    assert run["ended"] is not None
    assert len(remote_all(peer.base_url, "Patient")) == 1


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
        missing = client.get("/sync/runs/999")
        assert missing.status_code == 404
        assert missing.json()["resourceType"] == "OperationOutcome"
        bad = client.post("/sync/runs", content=b"{", headers={"content-type": "application/json"})
        assert bad.status_code == 400
        assert client.get("/sync/runs").json() == {"runs": []}
        too_many = client.get("/sync/runs", params={"_count": 1000})
        assert too_many.status_code == 400
        assert too_many.json()["resourceType"] == "OperationOutcome"
