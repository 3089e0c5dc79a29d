"""Reads by id on the event loop (``Store.inline_reads``, ``fhir_service.api.reads``).

On SQLite a read by id and a vread run on a connection of the loop's own thread: they never
wait for the pool the worker threads share, and they see every commit at once (no snapshot
is left open between requests). On PostgreSQL they go to the thread pool.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from fastapi.testclient import TestClient

from fhir_service.api import create_app
from fhir_service.storage import SqlStore
from tests.api.conftest import settings_for

PATIENT = {"resourceType": "Patient", "name": [{"family": "Inline"}]}


@pytest.fixture
def small_pool(sqlite_url: str) -> Iterator[tuple[TestClient, SqlStore]]:
    """The app on a SQLite store whose shared pool holds two connections."""
    store = SqlStore.open(sqlite_url, pool_size=1)
    try:
        with TestClient(create_app(settings_for(sqlite_url), store=store)) as client:
            yield client, store
    finally:
        store.close()


def test_sqlite_reads_do_not_wait_for_the_shared_pool(
    small_pool: tuple[TestClient, SqlStore],
) -> None:
    client, store = small_pool
    created = client.post("/fhir/Patient", json=PATIENT)
    assert created.status_code == 201
    pid = created.json()["id"]
    with ExitStack() as held:
        # Every connection of the shared pool is taken (pool_size 1 + overflow 1): a read
        # sent to the thread pool would wait for one (30 s) and fail.
        for _ in range(2):
            held.enter_context(store.engine.connect())
        read = client.get(f"/fhir/Patient/{pid}")
        vread = client.get(f"/fhir/Patient/{pid}/_history/1")
        missing = client.get("/fhir/Patient/nobody")
    assert read.status_code == 200
    assert read.json()["name"] == [{"family": "Inline"}]
    assert vread.status_code == 200
    assert vread.headers["etag"] == 'W/"1"'
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"


def test_inline_reads_see_each_commit(small_pool: tuple[TestClient, SqlStore]) -> None:
    client, store = small_pool
    pid = client.post("/fhir/Patient", json=PATIENT).json()["id"]
    assert client.get(f"/fhir/Patient/{pid}").headers["etag"] == 'W/"1"'
    with store.begin() as repo:  # a commit on a pool connection, not through the app
        repo.update("Patient", pid, {**PATIENT, "id": pid, "gender": "female"})
    again = client.get(f"/fhir/Patient/{pid}")
    assert again.headers["etag"] == 'W/"2"'
    assert again.json()["gender"] == "female"
    with store.begin() as repo:
        repo.delete("Patient", pid)
    assert client.get(f"/fhir/Patient/{pid}").status_code == 410


def test_only_sqlite_reads_inline(database_url: str) -> None:
    store = SqlStore.open(database_url)
    try:
        assert store.inline_reads is database_url.startswith("sqlite")
        with pytest.raises(ValueError), store.begin(inline=True):
            pass  # an inline unit is never a write
        if not store.inline_reads:
            with pytest.raises(ValueError), store.begin(readonly=True, inline=True):
                pass
    finally:
        store.close()
