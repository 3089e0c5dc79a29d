"""Sync runs as jobs of the one job table (fhir_service.sync.state, storage.jobs):
claiming, fencing by attempt, recovery of stale runs, one run at a time per remote and
direction, runs of the command left to their process."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fhir_service.storage import SqlStore
from fhir_service.storage.jobs import Jobs
from fhir_service.storage.sync_state import RunLost
from fhir_service.sync import state

REMOTE = "http://remote.example/fhir"


def _queue(
    store: SqlStore,
    direction: str,
    patient: str | None = None,
    types: list[str] | None = None,
    remote: str = REMOTE,
) -> str:
    scope = state.scope_of(direction, patient)
    return state.queue_run(store, state.remote_key(remote), direction, scope, patient, types).id


def test_a_queued_run_is_claimed_once_with_its_parameters(store: SqlStore) -> None:
    jobs = Jobs.of(store)
    run_id = _queue(store, "pull", "p1", ["Patient", "Observation"], remote=REMOTE + "/")
    queued = state.run(store, run_id)
    assert queued is not None
    assert (queued["status"], queued["scope"], queued["attempts"]) == ("queued", "everything:p1", 0)

    claimed = jobs.claim([state.KIND])
    assert claimed is not None
    assert (claimed.ref.id, claimed.ref.attempt) == (run_id, 1)
    assert (claimed.params["direction"], claimed.params["remote"]) == ("pull", REMOTE)
    assert (claimed.params["patient"], claimed.params["types"]) == (
        "p1",
        ["Patient", "Observation"],
    )
    assert jobs.claim([state.KIND]) is None
    running = state.run(store, run_id)
    assert running is not None and running["status"] == "running"


def test_a_stale_run_is_queued_again_and_its_old_holder_is_fenced_out(store: SqlStore) -> None:
    jobs = Jobs.of(store)
    run_id = _queue(store, "push")
    first = jobs.claim([state.KIND])
    assert first is not None
    assert jobs.recover(timedelta(hours=1)) == 0  # its heartbeat is fresh
    assert jobs.recover(timedelta(0)) == 1
    second = jobs.claim([state.KIND])
    assert second is not None and second.ref == state.RunRef(run_id, 2)

    assert not jobs.beat(first.ref)
    with pytest.raises(RunLost), state.unit(store) as (tx, _):
        state.record_progress(tx, first.ref, {"created": 99}, [])
    assert not state.finish_run(store, first.ref, "failed", {}, [{"error": "X"}])
    assert jobs.beat(second.ref)
    assert state.finish_run(store, second.ref, "succeeded", {"created": 3}, [])
    ended = state.run(store, run_id)
    assert ended is not None
    assert (ended["status"], ended["counts"], ended["attempts"]) == ("succeeded", {"created": 3}, 2)


def test_a_given_back_run_is_claimed_again(store: SqlStore) -> None:
    jobs = Jobs.of(store)
    _queue(store, "push")
    first = jobs.claim([state.KIND])
    assert first is not None
    assert jobs.give_back(first.ref)
    assert not jobs.give_back(first.ref)
    again = jobs.claim([state.KIND])
    assert again is not None and again.ref.attempt == 2


def test_one_run_at_a_time_per_remote_and_direction(store: SqlStore) -> None:
    jobs = Jobs.of(store)
    first_push = _queue(store, "push")
    second_push = _queue(store, "push")
    pull = _queue(store, "pull")
    other_remote = _queue(store, "push", remote="http://other.example/fhir")

    order = []
    while (claimed := jobs.claim([state.KIND])) is not None:
        order.append(claimed.ref.id)
    assert order == [first_push, pull, other_remote]

    assert state.finish_run(store, state.RunRef(first_push, 1), "succeeded", {}, [])
    claimed = jobs.claim([state.KIND])
    assert claimed is not None and claimed.ref.id == second_push


def test_runs_of_the_sync_command_are_left_to_their_process(store: SqlStore) -> None:
    jobs = Jobs.of(store)
    own = state.start_run(store, REMOTE, "push", "changed")
    assert jobs.recover(timedelta(0)) == 0
    assert jobs.claim([state.KIND]) is None
    queued = _queue(store, "push")
    claimed = jobs.claim([state.KIND])
    assert claimed is not None and claimed.ref.id == queued
    later = state.start_run(store, REMOTE, "push", "changed")
    statuses = {r["id"]: r["status"] for r in state.runs(store)}
    assert statuses == {own.id: "interrupted", queued: "running", later.id: "running"}
