"""Sync runs as database jobs (fhir_service.sync.jobs): claiming, fencing by attempt,
recovery of stale runs, one run at a time per remote and direction."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from fhir_service.storage import SqlStore
from fhir_service.sync import state
from fhir_service.sync.jobs import SyncJobs

REMOTE = "http://remote.example/fhir"


@pytest.fixture
def jobs(store: SqlStore) -> Iterator[SyncJobs]:
    yield SyncJobs.of(store)


def test_a_queued_run_is_claimed_once_with_its_parameters(store: SqlStore, jobs: SyncJobs) -> None:
    run_id = jobs.queue(REMOTE + "/", "pull", "p1", ["Patient", "Observation"])["id"]
    queued = state.run(store, run_id)
    assert queued is not None
    assert (queued["status"], queued["scope"], queued["attempts"]) == ("queued", "everything:p1", 0)

    claimed = jobs.claim()
    assert claimed is not None
    assert (claimed.ref.id, claimed.ref.attempt) == (run_id, 1)
    assert (claimed.direction, claimed.remote) == ("pull", REMOTE)
    assert (claimed.patient, claimed.types) == ("p1", ["Patient", "Observation"])
    assert jobs.claim() is None
    running = state.run(store, run_id)
    assert running is not None and running["status"] == "running"


def test_a_stale_run_is_queued_again_and_its_old_holder_is_fenced_out(
    store: SqlStore, jobs: SyncJobs
) -> None:
    run_id = jobs.queue(REMOTE, "push", None, None)["id"]
    first = jobs.claim()
    assert first is not None
    assert jobs.recover(timedelta(hours=1)) == 0  # its heartbeat is fresh
    assert jobs.recover(timedelta(0)) == 1
    second = jobs.claim()
    assert second is not None and second.ref == state.RunRef(run_id, 2)

    assert not jobs.beat(first.ref)
    with state.unit(store) as (tx, _):
        state.record_progress(tx, first.ref, {"created": 99}, [])
    assert not state.finish_run(store, first.ref, "failed", {}, [{"error": "X"}])
    assert jobs.beat(second.ref)
    assert state.finish_run(store, second.ref, "succeeded", {"created": 3}, [])
    ended = state.run(store, run_id)
    assert ended is not None
    assert (ended["status"], ended["counts"], ended["attempts"]) == ("succeeded", {"created": 3}, 2)


def test_a_given_back_run_is_claimed_again(store: SqlStore, jobs: SyncJobs) -> None:
    jobs.queue(REMOTE, "push", None, None)
    first = jobs.claim()
    assert first is not None
    assert jobs.give_back(first.ref)
    assert not jobs.give_back(first.ref)
    again = jobs.claim()
    assert again is not None and again.ref.attempt == 2


def test_one_run_at_a_time_per_remote_and_direction(store: SqlStore, jobs: SyncJobs) -> None:
    first_push = jobs.queue(REMOTE, "push", None, None)["id"]
    second_push = jobs.queue(REMOTE, "push", None, None)["id"]
    pull = jobs.queue(REMOTE, "pull", None, None)["id"]
    other_remote = jobs.queue("http://other.example/fhir", "push", None, None)["id"]

    order = []
    while (claimed := jobs.claim()) is not None:
        order.append(claimed.ref.id)
    assert order == [first_push, pull, other_remote]

    assert state.finish_run(store, state.RunRef(first_push, 1), "succeeded", {}, [])
    claimed = jobs.claim()
    assert claimed is not None and claimed.ref.id == second_push


def test_runs_of_the_sync_command_are_left_to_their_process(
    store: SqlStore, jobs: SyncJobs
) -> None:
    own = state.start_run(store, REMOTE, "push", "changed")
    assert jobs.recover(timedelta(0)) == 0
    assert jobs.claim() is None
    queued = jobs.queue(REMOTE, "push", None, None)["id"]
    claimed = jobs.claim()
    assert claimed is not None and claimed.ref.id == queued
    later = state.start_run(store, REMOTE, "push", "changed")
    statuses = {r["id"]: r["status"] for r in state.runs(store)}
    assert statuses == {own.id: "interrupted", queued: "running", later.id: "running"}
