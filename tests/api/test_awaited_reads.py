"""Reads by id awaited by async routes (``Store.run_read``).

On SQLite a read by id and a vread run on the event loop on a connection of the loop's
own: they never wait for the pool the worker threads share, and they see every commit at
once (no snapshot is left open between requests). On PostgreSQL, and on any store opened
without a read engine, they run in a worker thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from fastapi.testclient import TestClient

from fhir_service.api import create_app
from fhir_service.errors import NotFound
from fhir_service.storage import Repository, SqlStore, Stored
from fhir_service.storage.access import AccessScope
from fhir_service.storage.engine import create_engine
from tests.api.conftest import settings_for

FULL_ACCESS = AccessScope.full()

PATIENT = {"resourceType": "Patient", "name": [{"family": "Awaited"}]}


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
    assert read.json()["name"] == [{"family": "Awaited"}]
    assert vread.status_code == 200
    assert vread.headers["etag"] == 'W/"1"'
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"


def test_sqlite_loop_reads_see_each_commit(small_pool: tuple[TestClient, SqlStore]) -> None:
    client, store = small_pool
    pid = client.post("/fhir/Patient", json=PATIENT).json()["id"]
    assert client.get(f"/fhir/Patient/{pid}").headers["etag"] == 'W/"1"'
    with store.begin(FULL_ACCESS) as repo:  # a commit on a pool connection, not through the app
        repo.update("Patient", pid, {**PATIENT, "id": pid, "gender": "female"})
    again = client.get(f"/fhir/Patient/{pid}")
    assert again.headers["etag"] == 'W/"2"'
    assert again.json()["gender"] == "female"
    with store.begin(FULL_ACCESS) as repo:
        repo.delete("Patient", pid)
    assert client.get(f"/fhir/Patient/{pid}").status_code == 410


@pytest.mark.parametrize("opened", [True, False], ids=["open", "engine-only"])
def test_reads_without_read_engine_run_in_a_thread(database_url: str, opened: bool) -> None:
    """PostgreSQL stores (and any store made from an engine alone) read in a worker thread;
    the SQLite store opened with ``open`` reads right here."""
    store = SqlStore.open(database_url) if opened else SqlStore(create_engine(database_url))
    here = opened and database_url.startswith("sqlite")
    threads: list[str] = []

    def read(repo: Repository, id: str) -> Stored:
        threads.append(threading.current_thread().name)
        return repo.read("Patient", id)

    try:
        with store.begin(FULL_ACCESS) as repo:
            repo.update("Patient", "p1", {**PATIENT, "id": "p1"})
        stored = asyncio.run(store.run_read(FULL_ACCESS, lambda repo: read(repo, "p1")))
        assert stored.version_id == 1
        with pytest.raises(NotFound):
            asyncio.run(store.run_read(FULL_ACCESS, lambda repo: read(repo, "p2")))
        main = threading.current_thread().name
        assert threads == [main, main] if here else main not in threads
    finally:
        store.close()


def test_sqlite_loop_read_database_error_is_503_and_the_next_read_recovers(
    small_pool: tuple[TestClient, SqlStore],
) -> None:
    """A read by id runs SQLite's own statement on the driver connection; its driver
    error still reaches the client as the 503 of any database error, and the loop's
    connection, discarded after it, is replaced by the next read."""
    client, store = small_pool
    pid = client.post("/fhir/Patient", json=PATIENT).json()["id"]
    assert client.get(f"/fhir/Patient/{pid}").status_code == 200
    with store.engine.begin() as conn:  # a real fault: the table the read needs is gone
        conn.exec_driver_sql("ALTER TABLE resource RENAME TO resource_away")
    failed = client.get(f"/fhir/Patient/{pid}")
    assert failed.status_code == 503, failed.text
    assert failed.json()["resourceType"] == "OperationOutcome"
    assert "Traceback" not in failed.text
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE resource_away RENAME TO resource")
    again = client.get(f"/fhir/Patient/{pid}")
    assert again.status_code == 200
    assert again.json()["name"] == [{"family": "Awaited"}]
