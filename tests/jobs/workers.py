"""Runner processes for the job tests: real ``fhir-service jobs work`` subprocesses on
one database, and a hold on a job's row that stops its runner's next write."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import sqlalchemy as sa

from fhir_service.storage import SqlStore
from fhir_service.storage.jobs import Job, Jobs, job, write_connection

STALE_SECONDS = 15
"""The runners' stale limit: a killed runner's job is taken over this long after its
last heartbeat. Well above the longest pause of a live runner's heartbeat on a busy
machine (a page of a sync pull holds the job's row, or SQLite's write lock, while it
commits), so a live runner's job is never taken over. (With 6 s the two-runner test
failed once in a full run on a machine at a fifth of its usual CPU speed and passed
alone; the longer limit leaves a slow live runner more room.)"""
DEADLINE = 300.0
"""Seconds a test waits for a state before it fails."""


class Worker:
    """One ``fhir-service jobs work`` process."""

    def __init__(self, database_url: str, export_dir: Path) -> None:
        env = {
            **os.environ,
            "FHIR_SERVICE_DATABASE_URL": database_url,
            "FHIR_SERVICE_EXPORT_DIR": str(export_dir),
            "FHIR_SERVICE_WORKER_STALE_SECONDS": str(STALE_SECONDS),
            "FHIR_SERVICE_JOB_POLL_SECONDS": "0.2",
            "FHIR_SERVICE_LOG_LEVEL": "WARNING",
        }
        command = [sys.executable, "-m", "fhir_service", "jobs", "work"]
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def holds(self, found: Job) -> bool:
        """Whether this process claimed ``found`` last (its ``worker`` column)."""
        return found.worker is not None and found.worker.endswith(f":{self.pid}")

    def kill(self) -> None:
        """SIGKILL: the process ends with no chance to give its job back."""
        os.kill(self.pid, signal.SIGKILL)
        self.process.wait()
        assert self.process.returncode == -signal.SIGKILL

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def workers(database_url: str, export_dir: Path, count: int = 2) -> Iterator[list[Worker]]:
    """``count`` runner processes on one database, stopped at the end."""
    started = [Worker(database_url, export_dir) for _ in range(count)]
    try:
        yield started
    finally:
        for worker in started:
            worker.stop()


def wait_for(what: str, reached: Callable[[], bool]) -> None:
    """Poll ``reached`` until it is true; fail naming ``what`` after ``DEADLINE``."""
    deadline = time.monotonic() + DEADLINE
    while not reached():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.05)


def current(store: SqlStore, job_id: str) -> Job:
    found = Jobs.of(store).get(job_id)
    assert found is not None
    return found


CANCEL = (
    "UPDATE job SET state = 'cancelled', message = 'cancelled' WHERE id = {} AND state = 'running'"
)
"""``Jobs.cancel`` of a running job, as the holder of its row runs it."""


@contextlib.contextmanager
def holding(store: SqlStore, job_id: str) -> Iterator[Callable[[], bool]]:
    """Hold the job's row while the block lasts, so that its runner's next report,
    heartbeat or end waits: on PostgreSQL with ``SELECT ... FOR UPDATE``, on SQLite with
    the database's write lock. SQLite gives its lock to no waiter in turn: a runner
    writing one batch after another would take it again before a waiting connection
    woke, so this one asks again at once until it has it. The block is given a
    ``cancel()`` that cancels the job in the holding transaction (committed at the end of
    the block) and says whether it was running."""
    url = store.engine.url
    if url.get_backend_name() == "sqlite":
        with _sqlite_write_lock(str(url.database)) as raw:
            yield lambda: raw.execute(CANCEL.format("?"), (job_id,)).rowcount == 1
            raw.commit()
        return
    with write_connection(store.engine) as conn, conn.begin():
        conn.execute(sa.select(job.c.id).where(job.c.id == job_id).with_for_update()).one()
        yield lambda: conn.exec_driver_sql(CANCEL.format("%(id)s"), {"id": job_id}).rowcount == 1


@contextlib.contextmanager
def _sqlite_write_lock(path: str) -> Iterator[sqlite3.Connection]:
    raw = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        deadline = time.monotonic() + DEADLINE
        while True:
            try:
                raw.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError:
                assert time.monotonic() < deadline, "the write lock stayed taken"
        yield raw
    finally:
        raw.close()


def holder(running: list[Worker], found: Job) -> tuple[Worker, Worker]:
    """The worker that holds ``found`` and the other one."""
    first, second = running
    assert first.holds(found) or second.holds(found), found.worker
    return (first, second) if first.holds(found) else (second, first)


@contextlib.contextmanager
def mid_job(
    store: SqlStore, make: Callable[[], str], started: Callable[[Job], bool]
) -> Iterator[tuple[str, Job, Callable[[], bool]]]:
    """Queue a job with ``make``, wait until ``started`` says it is under way and hold its
    row while the block lasts, so its runner cannot end it; gives the job's id, the job
    as held and the hold's ``cancel``. A job that ended, or went past what ``started``
    accepts, before it could be held is left, and another is queued (at most five
    tries)."""
    ended = []
    for _ in range(5):
        job_id = make()

        def under_way(job_id: str = job_id) -> bool:
            return started(current(store, job_id)) or _done(store, job_id)

        wait_for("a job under way", under_way)
        with holding(store, job_id) as cancel:
            seen = current(store, job_id)
            if seen.state == "running" and started(seen):
                yield job_id, seen, cancel
                return
        ended.append(seen)
    raise AssertionError(f"every job ended before it could be held: {ended}")


def kill_mid_job(
    store: SqlStore, running: list[Worker], make: Callable[[], str], started: Callable[[Job], bool]
) -> tuple[str, Job, Worker, Worker]:
    """SIGKILL the runner of a job in the middle of it (``mid_job``); returns the job's id,
    the job as it was at the kill, the killed worker and the other one."""
    with mid_job(store, make, started) as (job_id, seen, _):
        killed, other = holder(running, seen)
        killed.kill()
    return job_id, seen, killed, other


def cancel_mid_job(store: SqlStore, make: Callable[[], str], started: Callable[[Job], bool]) -> str:
    """Cancel a job in the middle of it (``mid_job``); returns its id."""
    with mid_job(store, make, started) as (job_id, _, cancel):
        assert cancel()
    return job_id


def _done(store: SqlStore, job_id: str) -> bool:
    return not current(store, job_id).active
