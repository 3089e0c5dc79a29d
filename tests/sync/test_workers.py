"""Sync runs started over HTTP are carried out by the sync workers of real
`fhir-service serve` processes: a run whose process is killed with SIGKILL is taken over
by another process on the same database, and two processes on one PostgreSQL database
carry each run out once."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from fhir_service.storage import SqlStore
from fhir_service.sync import state
from tests.peer.process import Peer, start_fhir_service
from tests.sync.conftest import case_bundle, load_example
from tests.sync.helpers import content, fill, kill_when, local_all, remote_all, remote_total

COUNT = 1500


def origin(server: Peer) -> str:
    return server.base_url.rsplit("/fhir", 1)[0]


def wait_for_end(server: Peer, run_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 300
    while True:
        run: dict[str, Any] = httpx.get(f"{origin(server)}/sync/runs/{run_id}", timeout=30).json()
        if run["status"] not in ("queued", "running"):
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.2)


@pytest.fixture
def servers() -> Iterator[ExitStack]:
    """Stops the service processes a test starts (by pid)."""
    with ExitStack() as stack:
        yield stack


def serve(stack: ExitStack, database_url: str, stale_seconds: int, remote: str) -> Peer:
    settings = {
        "FHIR_SERVICE_WORKER_STALE_SECONDS": str(stale_seconds),
        "FHIR_SERVICE_SYNC_REMOTES": json.dumps([remote]),
    }
    server = start_fhir_service(database_url, settings=settings)
    stack.callback(server.stop)
    return server


def test_a_run_whose_server_was_killed_is_finished_by_another(
    database_url: str, peer: Peer, servers: ExitStack
) -> None:
    store = SqlStore.open(database_url)
    try:
        fill(store, COUNT)
        first = serve(servers, database_url, 600, peer.base_url)
        started = httpx.post(
            f"{origin(first)}/sync/runs",
            json={"direction": "push", "remote": peer.base_url},
            timeout=30,
        )
        assert started.status_code == 202
        run_id = started.json()["id"]
        kill_when(first.process, lambda: remote_total(peer.base_url, "Observation") >= COUNT // 3)
        assert remote_total(peer.base_url, "Observation") < COUNT - 1
        left = state.run(store, run_id)
        assert left is not None and left["status"] == "running"

        second = serve(servers, database_url, 2, peer.base_url)
        run = wait_for_end(second, run_id)

        assert (run["status"], run["attempts"]) == ("succeeded", 2)
        observations = remote_all(peer.base_url, "Observation")
        assert len(observations) == COUNT - 1
        assert len({o["id"] for o in observations}) == COUNT - 1
        assert len(remote_all(peer.base_url, "Patient")) == 1
        mine = local_all(store)
        for remote in observations:
            assert content(remote) == content(mine[("Observation", remote["id"])])
    finally:
        store.close()


@pytest.mark.postgres
def test_two_servers_on_one_database_carry_each_run_out_once(
    postgres_url: str, peer: Peer, servers: ExitStack
) -> None:
    store = SqlStore.open(postgres_url)
    try:
        load_example(store)
        replicas = [serve(servers, postgres_url, 60, peer.base_url) for _ in range(2)]
        body = {"direction": "push", "remote": peer.base_url}
        run_ids = [
            httpx.post(f"{origin(replicas[i % 2])}/sync/runs", json=body, timeout=30).json()["id"]
            for i in range(6)
        ]
        runs = [wait_for_end(replicas[0], run_id) for run_id in run_ids]
    finally:
        store.close()

    assert [(r["status"], r["attempts"]) for r in runs] == [("succeeded", 1)] * 6
    entries = case_bundle()["entry"]
    assert sum(r["counts"].get("created", 0) for r in runs) == len(entries)
    for rtype in {e["resource"]["resourceType"] for e in entries}:
        held = remote_all(peer.base_url, rtype)
        expected = sum(1 for e in entries if e["resource"]["resourceType"] == rtype)
        assert len(held) == len({r["id"] for r in held}) == expected, rtype
