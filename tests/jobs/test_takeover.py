"""Two runner processes on one database (a SQLite file, then PostgreSQL): every job of
every kind is run by exactly one of them; one killed with SIGKILL in the middle of a job
leaves the job to the other, which takes it over once the heartbeat is stale and ends
it with the result an uninterrupted run gives (export files, reindex rows, sync
counts); a cancelled job of each kind stops (docs/architecture.md, "Background jobs")."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from fhir_service.export import kind as export_kind
from fhir_service.export.params import ExportParams
from fhir_service.storage import AccessScope, SqlStore, reindex_run, upgrade
from fhir_service.storage.jobs import Job, Jobs
from fhir_service.storage.search_tables import SEARCH_TABLES
from fhir_service.sync import state
from fhir_service.sync.push import push
from tests.jobs.workers import cancel_mid_job, current, kill_mid_job, wait_for, workers
from tests.peer.process import Peer
from tests.sync.conftest import with_client
from tests.sync.helpers import fill

FULL = AccessScope.full()
PATIENTS = 1200
"""More than one export batch (1000) and two reindex batches (500)."""
# The exports are Patient-level: their runner loads the compartment definition before
# the first resource, which leaves time to catch it in the middle of the job.


def _patients(store: SqlStore, count: int) -> None:
    with store.begin(FULL) as repo:
        for i in range(count):
            repo.create({"resourceType": "Patient", "name": [{"family": f"Runner{i:05d}"}]})


def _ended(store: SqlStore, job_id: str) -> bool:
    return not current(store, job_id).active


def _files(directory: Path) -> dict[str, list[str]]:
    """Each NDJSON file's lines, sorted, by file name."""
    return {
        path.name: sorted(path.read_text().splitlines()) for path in sorted(directory.iterdir())
    }


def _index_rows(store: SqlStore) -> dict[str, list[tuple[Any, ...]]]:
    """Every search index row of the Patients, by table."""
    rows = {}
    with store.engine.connect() as conn:
        for name, table in SEARCH_TABLES.items():
            found = conn.execute(sa.select(table).where(table.c.res_type == "Patient"))
            rows[name] = sorted((tuple(r) for r in found), key=repr)
    return rows


def _drop_index_rows(store: SqlStore) -> None:
    with store.engine.begin() as conn:
        for table in SEARCH_TABLES.values():
            conn.execute(sa.delete(table).where(table.c.res_type == "Patient"))


def _pull(store: SqlStore, remote: str) -> Job:
    scope = state.scope_of("pull", None)
    types = ["Patient", "Observation"]
    return state.queue_run(store, state.remote_key(remote), "pull", scope, None, types)


def _counts(store: SqlStore) -> dict[str, int]:
    with store.begin(FULL, readonly=True) as repo:
        return {t: n for t, n in repo.counts().items() if n}


def test_two_runners_run_every_job_once(database_url: str, tmp_path: Path, peer: Peer) -> None:
    store = SqlStore.open(database_url)
    source = tmp_path / "source.sqlite3"
    upgrade(f"sqlite:///{source}")
    pushed = SqlStore.open(f"sqlite:///{source}")
    try:
        _patients(store, 50)
        fill(pushed, 60)
        with_client(peer.base_url, lambda c: push(pushed, c))
        jobs = Jobs.of(store)
        made = [export_kind.create(jobs, f"client-{i}", f"r{i}", ExportParams()) for i in range(6)]
        made_jobs = [m.id for m in made if m is not None]
        for types in (["Patient"], ["Observation"], ["Patient", "Observation"]):
            created = reindex_run.create(jobs, types, "test")
            assert created is not None
            made_jobs.append(created.id)
        made_jobs += [_pull(store, peer.base_url).id for _ in range(3)]
        assert len(made_jobs) == 12
        with workers(database_url, tmp_path / "exports"):
            wait_for("every job to end", lambda: all(_ended(store, j) for j in made_jobs))
        ended = [current(store, j) for j in made_jobs]
        assert {j.state for j in ended} == {"completed"}, [(j.kind, j.error) for j in ended]
        for found in ended:
            # A job another covered (a reindex) completes unclaimed; every other one was
            # claimed by exactly one runner, once.
            assert found.attempt == (0 if found.message.startswith("covered") else 1), found
        assert _counts(store)["Observation"] == 59
    finally:
        pushed.close()
        store.close()


def test_a_killed_runners_export_is_finished_by_the_other(
    database_url: str, tmp_path: Path
) -> None:
    store = SqlStore.open(database_url)
    exports = tmp_path / "exports"
    clients = iter(range(10))

    def export() -> str:
        client = f"client-{next(clients)}"
        made = export_kind.create(Jobs.of(store), client, "r", ExportParams(level="patient"))
        assert made is not None
        return made.id

    try:
        _patients(store, PATIENTS)
        with workers(database_url, exports) as running:
            job_id, seen, _, other = kill_mid_job(store, running, export, _running)
            wait_for("the takeover", lambda: _ended(store, job_id))
            again = export()
            wait_for("an uninterrupted export", lambda: _ended(store, again))
        taken = current(store, job_id)
        assert (taken.state, taken.attempt) == ("completed", 2)
        assert seen.attempt == 1 and other.holds(taken)
        uninterrupted = current(store, again)
        assert uninterrupted.state == "completed"
        assert taken.result == uninterrupted.result
        assert _files(exports / job_id) == _files(exports / again)
        assert sum(len(lines) for lines in _files(exports / job_id).values()) == PATIENTS
    finally:
        store.close()


def test_a_killed_runners_reindex_is_resumed_by_the_other(
    database_url: str, tmp_path: Path
) -> None:
    store = SqlStore.open(database_url)

    def reindex() -> str:
        _drop_index_rows(store)
        made = reindex_run.create(Jobs.of(store), ["Patient"], "test")
        assert made is not None
        return made.id

    try:
        _patients(store, PATIENTS)
        as_written = _index_rows(store)
        with workers(database_url, tmp_path / "exports") as running:
            job_id, seen, _, other = kill_mid_job(store, running, reindex, _short_of_the_end)
            wait_for("the takeover", lambda: _ended(store, job_id))
        taken = current(store, job_id)
        assert (taken.state, taken.attempt) == ("completed", 2)
        assert other.holds(taken)
        assert seen.progress.get("done", 0) < PATIENTS
        assert (taken.progress["done"], taken.progress["total"]) == (PATIENTS, PATIENTS)
        assert _index_rows(store) == as_written
    finally:
        store.close()


def test_a_killed_runners_sync_run_is_finished_by_the_other(
    database_url: str, tmp_path: Path, peer: Peer
) -> None:
    source_url = f"sqlite:///{tmp_path / 'source.sqlite3'}"
    plain_url = f"sqlite:///{tmp_path / 'uninterrupted.sqlite3'}"
    upgrade(source_url)
    upgrade(plain_url)
    source, store, plain = (SqlStore.open(u) for u in (source_url, database_url, plain_url))
    try:
        fill(source, 700)
        with_client(peer.base_url, lambda c: push(source, c))
        with workers(database_url, tmp_path / "exports") as running:
            job_id, _, _, other = kill_mid_job(
                store, running, lambda: _pull(store, peer.base_url).id, _has_progress
            )
            wait_for("the takeover", lambda: _ended(store, job_id))
        taken = current(store, job_id)
        assert (taken.state, taken.attempt) == ("completed", 2), taken.error
        assert other.holds(taken)
        assert state.run_status(taken) == "succeeded"

        uninterrupted = _pull(plain, peer.base_url)
        with workers(plain_url, tmp_path / "exports", count=1):
            wait_for("an uninterrupted pull", lambda: _ended(plain, uninterrupted.id))
        assert current(plain, uninterrupted.id).state == "completed"
        assert _counts(store) == _counts(plain) == {"Patient": 1, "Observation": 699}
    finally:
        for opened in (source, store, plain):
            opened.close()


def _running(found: Job) -> bool:
    return found.state == "running"


def _short_of_the_end(found: Job) -> bool:
    """A reindex running with batches still to do."""
    return _running(found) and found.progress.get("done", 0) < PATIENTS


def _has_progress(found: Job) -> bool:
    """A first export or reindex batch, or a first page of Observations pulled."""
    progress = found.progress
    pulled = progress.get("counts", {}).get("created", 0)
    return bool(progress.get("count") or progress.get("done") or pulled > 1)


def _cancel_mid_job(
    database_url: str, make: Callable[[], str], started: Callable[[Job], bool], tmp: Path
) -> Job:
    """Cancel a job of ``make`` while its runner is in the middle of it; then a reindex
    queued after it still runs (the runner stopped the cancelled job and moved on)."""
    store = SqlStore.open(database_url)
    try:
        with workers(database_url, tmp / "exports", count=1):
            job_id = cancel_mid_job(store, make, started)
            after = reindex_run.create(Jobs.of(store), ["Organization"], "after the cancelled")
            assert after is not None
            wait_for("the next job", lambda: _ended(store, after.id))
            assert current(store, after.id).state == "completed"
            wait_for(
                "the stop", lambda: Jobs.of(store).get(job_id) is None or _ended(store, job_id)
            )
        found = Jobs.of(store).get(job_id)
        assert found is None or found.state == "cancelled"
        return found or current(store, after.id)
    finally:
        store.close()


def test_cancelling_a_running_export_stops_it_and_removes_its_files(
    database_url: str, tmp_path: Path
) -> None:
    store = SqlStore.open(database_url)
    clients = iter(range(10))

    def export() -> str:
        client = f"client-{next(clients)}"
        made = export_kind.create(Jobs.of(store), client, "r", ExportParams(level="patient"))
        assert made is not None
        return made.id

    try:
        _patients(store, PATIENTS)
        with workers(database_url, tmp_path / "exports", count=1):
            job_id = cancel_mid_job(store, export, _running)
            wait_for("the sweep", lambda: Jobs.of(store).get(job_id) is None)
        assert not (tmp_path / "exports" / job_id).exists()
    finally:
        store.close()


def test_cancelling_a_running_reindex_stops_it_after_its_batch(
    database_url: str, tmp_path: Path
) -> None:
    store = SqlStore.open(database_url)

    def reindex() -> str:
        made = reindex_run.create(Jobs.of(store), ["Patient"], "test")
        assert made is not None
        return made.id

    try:
        _patients(store, PATIENTS)
        ended = _cancel_mid_job(database_url, reindex, _running, tmp_path)
        assert ended.state == "cancelled"
        assert ended.progress.get("done", 0) < PATIENTS
    finally:
        store.close()


def test_cancelling_a_running_sync_run_stops_it(
    database_url: str, tmp_path: Path, peer: Peer
) -> None:
    source_url = f"sqlite:///{tmp_path / 'source.sqlite3'}"
    upgrade(source_url)
    source, store = SqlStore.open(source_url), SqlStore.open(database_url)
    try:
        fill(source, 700)
        with_client(peer.base_url, lambda c: push(source, c))
        ended = _cancel_mid_job(
            database_url, lambda: _pull(store, peer.base_url).id, _has_progress, tmp_path
        )
        assert (ended.state, state.run_status(ended)) == ("cancelled", "cancelled")
        assert 0 < Counter(_counts(store))["Observation"] < 699, "stopped part way"
    finally:
        source.close()
        store.close()
