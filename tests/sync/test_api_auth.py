"""Sync runs queued over HTTP authenticate to the configured remote with SMART Backend
Services (https://hl7.org/fhir/smart-app-launch/backend-services.html): the remote is
a second fhir-service in SMART mode, served by uvicorn, which issues tokens to a
registered client and refuses requests without one."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from fhir_service.api import create_app
from fhir_service.settings import Settings
from fhir_service.storage import SqlStore, upgrade
from fhir_service.storage.access import AccessScope
from tests.security.conftest import backend_client, smart_settings
from tests.served import free_port, serve
from tests.sync.conftest import case_bundle, load_example
from tests.sync.test_api import wait_for_end

FULL_ACCESS = AccessScope.full()

SCOPE = "system/*.read system/*.write"


def test_runs_to_the_configured_remote_use_its_credentials_and_no_other_does(
    database_url: str, tmp_path: Path
) -> None:
    remote_db = f"sqlite:///{tmp_path / 'remote.sqlite3'}"
    upgrade(remote_db)
    client_id, pem = backend_client(remote_db, tmp_path, SCOPE)
    store = SqlStore.open(database_url)
    try:
        load_example(store)
    finally:
        store.close()
    port = free_port()
    smart = smart_settings(remote_db, tmp_path, base_url=f"http://127.0.0.1:{port}/fhir")
    with serve(create_app(smart), port=port) as origin:
        remote = f"{origin}/fhir"
        # The same server under another name is another remote: allowed, no credentials.
        other = remote.replace("127.0.0.1", "localhost")
        assert httpx.get(f"{remote}/Patient").status_code == 401
        settings = Settings(
            database_url=database_url,
            auth_mode="open",
            remote_url=remote,
            sync_remotes=[other],
            remote_token_url=f"{origin}/auth/token",
            remote_client_id=client_id,
            remote_private_key=pem,
        )
        with TestClient(create_app(settings)) as client:
            pushed = client.post("/sync/runs", json={"direction": "push"})
            run, _ = wait_for_end(client, pushed.headers["content-location"])
            elsewhere = client.post("/sync/runs", json={"direction": "pull", "remote": other})
            refused, _ = wait_for_end(client, elsewhere.headers["content-location"])

    assert run["status"] == "succeeded", run["errors"]
    assert run["counts"]["created"] == len(case_bundle()["entry"])
    remote_store = SqlStore.open(remote_db)
    try:
        with remote_store.begin(FULL_ACCESS, readonly=True) as repo:
            assert sum(repo.counts().values()) == len(case_bundle()["entry"])
    finally:
        remote_store.close()
    assert refused["status"] == "failed"
    assert [e["error"] for e in refused["errors"]] == ["RemoteAuthError"]


def test_incomplete_smart_settings_stop_the_start(sqlite_url: str) -> None:
    settings = Settings(
        database_url=sqlite_url,
        auth_mode="open",
        remote_url="http://127.0.0.1:9/fhir",
        remote_client_id="only-an-id",
    )
    missing = "token URL, the client id and the private key"
    with pytest.raises(ValueError, match=missing), TestClient(create_app(settings)):
        pass
