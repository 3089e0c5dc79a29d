"""Transactions validating their new resources in a worker process
(fhir_service.storage.deferred_validation, fhir_service.fhir.validation_pool).

The pool is real: worker processes started with ``spawn``. Every test compares the
pooled store with the same database's store validating inline, on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import base64
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest

from fhir_service.errors import FhirServiceError, InvalidResource
from fhir_service.fhir.validation_pool import ValidationPool, first_invalid, packed, unpacked
from fhir_service.storage import SqlStore
from fhir_service.storage.access import AccessScope
from fhir_service.storage.deferred_validation import BATCH

FULL_ACCESS = AccessScope.full()

T = TypeVar("T")


class CountingPool(ValidationPool):
    """The real pool, counting the batches sent to its worker."""

    def __init__(self) -> None:
        super().__init__(1)
        self.batches: list[int] = []

    def submit(self, task: Callable[..., T], *args: Any) -> Future[T]:
        self.batches.append(len(unpacked(args[0])))
        return super().submit(task, *args)


@pytest.fixture(scope="module")
def pool() -> Iterator[CountingPool]:
    started = CountingPool()
    assert started.warmed(timeout=60)
    started.batches.clear()
    try:
        yield started
    finally:
        started.close()


@pytest.fixture
def stores(database_url: str, pool: CountingPool) -> Iterator[tuple[SqlStore, SqlStore]]:
    """(pooled store, inline store) on the same empty database."""
    pooled = SqlStore.open(database_url)
    pooled.validation_pool = pool
    inline = SqlStore.open(database_url)
    pool.batches.clear()
    try:
        yield pooled, inline
    finally:
        pooled.close()
        inline.close()


def patient(n: int) -> dict[str, Any]:
    return {
        "resource": {
            "resourceType": "Patient",
            "identifier": [{"system": "http://hospital.example/mrn", "value": f"MRN-{n}"}],
            "gender": "female",
        },
        "request": {"method": "POST", "url": "Patient"},
        "fullUrl": f"urn:uuid:00000000-0000-4000-8000-{n:012d}",
    }


def transaction(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def invalid_at(bundle: dict[str, Any], *positions: int) -> dict[str, Any]:
    for position in positions:
        bundle["entry"][position]["resource"]["gender"] = 42  # not a code: invalid per R4B
    return bundle


def outcome(store: SqlStore, bundle: dict[str, Any]) -> FhirServiceError:
    with pytest.raises(FhirServiceError) as raised, store.begin(FULL_ACCESS) as repo:
        repo.transaction(bundle)
    return raised.value


def count(store: SqlStore) -> int:
    with store.begin(FULL_ACCESS, readonly=True) as repo:
        return sum(repo.counts().values())


def test_a_transaction_sends_its_new_resources_to_the_worker_in_batches(
    stores: tuple[SqlStore, SqlStore], pool: CountingPool
) -> None:
    pooled, _ = stores
    with pooled.begin(FULL_ACCESS) as repo:
        response = repo.transaction(transaction(*[patient(n) for n in range(3 * BATCH + 3)]))
    assert [e["response"]["status"] for e in response["entry"]] == ["201 Created"] * 27
    assert pool.batches == [BATCH, BATCH, BATCH]  # the last 3 are validated in the caller
    assert count(pooled) == 27


@pytest.mark.parametrize("position", [0, 9, 2 * BATCH + 1, 3 * BATCH + 2])
def test_an_invalid_resource_fails_the_bundle_as_inline_validation_does(
    stores: tuple[SqlStore, SqlStore], position: int
) -> None:
    pooled, inline = stores
    bundle = transaction(*[patient(n) for n in range(3 * BATCH + 3)])
    expected = outcome(inline, invalid_at(bundle, position))
    got = outcome(pooled, invalid_at(bundle, position))
    assert isinstance(got, InvalidResource)
    assert got.issues == expected.issues
    assert got.expression == [f"Bundle.entry[{position}].resource.gender"]
    assert count(pooled) == 0


def test_of_several_invalid_resources_the_first_in_processing_order_is_the_error(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    pooled, inline = stores
    bundle = invalid_at(transaction(*[patient(n) for n in range(4 * BATCH)]), 20, 5, 30)
    expected = outcome(inline, bundle)
    assert outcome(pooled, bundle).issues == expected.issues
    assert expected.expression == ["Bundle.entry[5].resource.gender"]


def stale_put_of_a_new_patient(store: SqlStore) -> dict[str, Any]:
    """A PUT entry with If-Match W/"7" for a Patient just created (at version 1)."""
    with store.begin(FULL_ACCESS) as repo:
        existing = repo.create({"resourceType": "Patient", "gender": "male"}).stored.id
    return {
        "resource": {"resourceType": "Patient", "id": existing, "gender": "other"},
        "request": {"method": "PUT", "url": f"Patient/{existing}", "ifMatch": 'W/"7"'},
    }


def test_an_invalid_resource_queued_before_another_failure_is_the_error(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    """POSTs run before PUTs: a PUT with a stale If-Match fails after the invalid POST was
    queued, and must not hide it (inline validation would have stopped at the POST)."""
    pooled, inline = stores
    stale_put = stale_put_of_a_new_patient(inline)
    bundle = invalid_at(transaction(stale_put, *[patient(n) for n in range(2 * BATCH)]), 3)
    expected = outcome(inline, bundle)
    assert expected.expression == ["Bundle.entry[3].resource.gender"]
    assert outcome(pooled, bundle).issues == expected.issues
    assert count(pooled) == 1


def put(n: int) -> dict[str, Any]:
    """A create-on-update with the client's id."""
    entry = patient(n)
    entry["resource"]["id"] = f"client-{n}"
    entry["request"] = {"method": "PUT", "url": f"Patient/client-{n}"}
    return entry


def test_put_and_patch_entries_are_validated_in_the_worker_too(
    stores: tuple[SqlStore, SqlStore], pool: CountingPool
) -> None:
    pooled, _ = stores
    with pooled.begin(FULL_ACCESS) as repo:
        repo.transaction(transaction(*[put(n) for n in range(2 * BATCH + 1)]))
    patch = {
        "resource": {
            "resourceType": "Binary",
            "contentType": "application/json-patch+json",
            "data": base64.b64encode(b'[{"op": "add", "path": "/active", "value": true}]').decode(),
        },
        "request": {"method": "PATCH", "url": "Patient/client-0"},
    }
    changed = [put(n) for n in range(1, BATCH)]
    for entry in changed:
        entry["resource"]["gender"] = "male"  # an unchanged PUT writes (and validates) nothing
    with pooled.begin(FULL_ACCESS) as repo:
        repo.transaction(transaction(patch, *changed))
    assert pool.batches == [BATCH, BATCH, BATCH]
    with pooled.begin(FULL_ACCESS, readonly=True) as repo:
        assert repo.read("Patient", "client-0").resource["active"] is True


def test_an_invalid_put_before_a_stale_put_is_the_error(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    """PUTs run in Bundle order: the invalid one (entry 2) is written, validated later,
    and entry 12 then fails its If-Match; inline validation would have stopped at 2."""
    pooled, inline = stores
    stale_put = stale_put_of_a_new_patient(inline)
    entries = [put(n) for n in range(2 * BATCH)]
    entries.insert(12, stale_put)
    bundle = invalid_at(transaction(*entries), 2)
    expected = outcome(inline, bundle)
    assert expected.expression == ["Bundle.entry[2].resource.gender"]
    got = outcome(pooled, bundle)
    assert isinstance(got, InvalidResource)
    assert got.issues == expected.issues
    assert count(pooled) == 1


def test_a_killed_worker_costs_speed_not_checks(
    stores: tuple[SqlStore, SqlStore], pool: CountingPool
) -> None:
    pooled, inline = stores
    before = {p.pid for p in multiprocessing.active_children()}
    fresh = CountingPool()
    try:
        assert fresh.warmed(timeout=60)
        workers = {p.pid for p in multiprocessing.active_children()} - before
        assert workers, "the pool started no worker process"
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        pooled.validation_pool = fresh
        bundle = transaction(*[patient(n) for n in range(3 * BATCH)])
        expected = outcome(inline, invalid_at(bundle, 17))
        assert outcome(pooled, bundle).issues == expected.issues
        for entry in bundle["entry"]:
            entry["resource"]["gender"] = "female"
        with pooled.begin(FULL_ACCESS) as repo:
            repo.transaction(bundle)
        assert count(pooled) == 3 * BATCH
        # The pool replaced its dead worker: a batch is answered by a process again.
        invalid = [{"resourceType": "Patient", "gender": 1}]
        assert fresh.warmed(timeout=60)
        assert fresh.submit(first_invalid, invalid).result(timeout=60) == 0
    finally:
        fresh.close()


def _submit_after(barrier: threading.Barrier, pool: ValidationPool, out: list[Future[int]]) -> None:
    barrier.wait()
    out.append(pool.submit(first_invalid, [{"resourceType": "Patient"}]))


def test_threads_finding_the_pool_broken_replace_it_once() -> None:
    """Two requests that both find the worker dead leave one working pool: their own
    batches are answered inline (``result``), and once the new worker has started it
    answers again. The interleaving (one thread replacing before the other) is not
    forced here, so this checks the outcome rather than reproducing a race every time."""
    others = {p.pid for p in multiprocessing.active_children()}
    fresh = ValidationPool(1)
    try:
        for _ in range(3):
            assert fresh.warmed(timeout=60)
            for process in multiprocessing.active_children():
                if process.pid not in others:
                    os.kill(process.pid, signal.SIGKILL)
                    process.join(timeout=30)
            time.sleep(0.2)  # the executor notices its worker died
            barrier = threading.Barrier(2)
            futures: list[Future[int]] = []
            threads = [
                threading.Thread(target=_submit_after, args=(barrier, fresh, futures))
                for _ in range(2)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            inline = [
                fresh.result(f, lambda: first_invalid([{"resourceType": "Patient", "gender": 1}]))
                for f in futures
            ]
            assert inline == [0, 0]  # answered here: no worker took a task from the dead pool
            assert fresh.warmed(timeout=60)
            assert (
                fresh.submit(first_invalid, [{"resourceType": "Patient"}]).result(timeout=60) == -1
            )
    finally:
        fresh.close()


def test_the_worker_answers_with_the_first_invalid_position(pool: CountingPool) -> None:
    valid = {"resourceType": "Observation", "status": "final", "code": {"text": "size"}}
    no_status = {"resourceType": "Observation", "code": {"text": "size"}}
    assert pool.submit(first_invalid, [valid, valid]).result(timeout=60) == -1
    unknown = {"resourceType": "Nope"}
    assert pool.submit(first_invalid, [valid, no_status, unknown]).result(timeout=60) == 1


def test_a_task_the_worker_took_is_waited_for_a_queued_one_is_run_here() -> None:
    """``result`` on the real pool: a task handed to the worker (running, or in its
    pipe) answers from the worker; a task still queued in this process is withdrawn
    and run inline."""
    fresh = ValidationPool(1)
    try:
        assert fresh.warmed(timeout=60)
        tasks = [fresh.submit(time.sleep, 1) for _ in range(6)]
        taken, queued = tasks[0], tasks[-1]
        deadline = time.monotonic() + 30
        while not taken.running() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert taken.running() and not queued.running()
        assert fresh.result(queued, lambda: "inline") == "inline"
        assert queued.cancelled()
        assert fresh.result(taken, lambda: "inline") is None  # time.sleep's answer
    finally:
        fresh.close()


def test_tasks_submitted_while_the_workers_start_are_run_here() -> None:
    """A worker's first second or two goes to importing the models: a task handed to it
    then would keep the caller waiting, so none is; the caller validates itself."""
    fresh = ValidationPool(1)
    try:
        starting = fresh.submit(first_invalid, [{"resourceType": "Patient"}])
        assert not starting.running()
        assert fresh.result(starting, lambda: -2) == -2  # answered by the caller
        assert fresh.warmed(timeout=60)
        warm = fresh.submit(first_invalid, [{"resourceType": "Patient", "gender": 1}])
        assert warm.result(timeout=60) == 0  # answered by the worker
    finally:
        fresh.close()


def test_bodies_json_cannot_hold_are_sent_as_they_are(pool: CountingPool) -> None:
    decimal = [
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "valueQuantity": {"value": Decimal("1.50")},
        }
    ]
    assert isinstance(packed(decimal), list)
    assert pool.submit(first_invalid, packed(decimal)).result(timeout=60) == -1
    assert isinstance(packed([{"resourceType": "Patient"}]), bytes)


def test_workers_end_with_the_process_that_started_them(tmp_path: Path) -> None:
    """A server killed with SIGKILL runs no cleanup; its validation worker must not stay."""
    script = tmp_path / "owner.py"
    script.write_text(
        "import multiprocessing, sys, time\n"
        "from fhir_service.fhir.validation_pool import ValidationPool, first_invalid\n"
        "if __name__ == '__main__':\n"
        "    pool = ValidationPool(1)\n"
        "    assert pool.warmed(timeout=60)\n"
        "    print(*[p.pid for p in multiprocessing.active_children()], flush=True)\n"
        "    time.sleep(600)\n"
    )
    owner = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    try:
        assert owner.stdout is not None
        children = [int(pid) for pid in owner.stdout.readline().split()]
        assert children, "the pool started no worker process"
    finally:
        owner.kill()
        owner.wait()
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if _alive(pid)]


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not yet reaped by init, counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[-1][:1] != "Z"
    except FileNotFoundError:
        return False
