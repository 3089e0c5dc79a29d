"""Sync runs in the database: the ``sync_run`` table's record, end, reads and job queries
(asynchronous pattern of https://hl7.org/fhir/R4/async.html; DESIGN.md, "When one
machine is not enough").

A run of the ``sync`` command is recorded ``running`` by its process (``start``). A run
started over HTTP is a row with ``params``: ``queued`` -> ``running`` -> ``succeeded`` |
``partial`` | ``failed``. Workers claim the oldest queued run with ``SELECT ... FOR
UPDATE SKIP LOCKED`` on PostgreSQL (inside SQLite's write transaction there), so two
service processes never carry out the same run; each claim counts one ``attempt``, the
fencing token of ``RunRef``. A run waits while an older run of the same remote and
direction is queued or running. A running run whose heartbeat is older than the stale
limit is queued again by ``recover``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from fhir_service.storage.jobs import read_connection, write_connection
from fhir_service.storage.store import SqlStore
from fhir_service.storage.sync_tables import sync_run

ACTIVE = ("queued", "running")


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RunRef:
    """A run as one process holds it: its id and the attempt (claim) that process made.

    Progress and the end of a run are written only while the run is ``running`` under
    that attempt, a fencing token: a process that lost the run (its heartbeat went stale
    and another worker took it over, or it gave it back on shutdown) changes nothing.
    """

    id: int
    attempt: int


@dataclass(frozen=True)
class ClaimedRun:
    """A run this process claimed: what to do, against which remote."""

    ref: RunRef
    direction: str
    remote: str
    patient: str | None
    types: list[str] | None


def held(run: RunRef) -> sa.ColumnElement[bool]:
    """The run is ``running`` under the attempt ``run`` holds."""
    return sa.and_(
        sync_run.c.id == run.id,
        sync_run.c.attempts == run.attempt,
        sync_run.c.status == "running",
    )


def _claimed(row: Any) -> ClaimedRun:
    params = row.params or {}
    return ClaimedRun(
        ref=RunRef(row.id, row.attempts),
        direction=row.direction,
        remote=row.remote,
        patient=params.get("patient"),
        types=params.get("types"),
    )


class SyncRuns:
    """The ``sync_run`` table of one database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @classmethod
    def of(cls, store: SqlStore) -> SyncRuns:
        """The run table on the store's database."""
        return cls(store.engine)

    def start(self, remote: str, direction: str, scope: str) -> RunRef:
        """Record a run that the calling process carries out itself (the ``sync`` command).
        Earlier such runs of the same kind left ``running`` (their process died) become
        ``interrupted``; runs queued over HTTP belong to the workers."""
        with write_connection(self._engine) as conn, conn.begin():
            conn.execute(
                sa.update(sync_run)
                .where(
                    sync_run.c.remote == remote,
                    sync_run.c.direction == direction,
                    sync_run.c.status == "running",
                    sync_run.c.params.is_(None),
                )
                .values(status="interrupted")
            )
            started = now()
            run_id = conn.execute(
                sa.insert(sync_run)
                .values(
                    remote=remote,
                    direction=direction,
                    scope=scope,
                    status="running",
                    started_at=started,
                    heartbeat=started,
                    attempts=1,
                    counts={},
                    errors=[],
                )
                .returning(sync_run.c.id)
            ).scalar_one()
        return RunRef(int(run_id), 1)

    def finish(
        self, run: RunRef, status: str, counts: dict[str, int], errors: list[dict[str, str]]
    ) -> bool:
        """End the run; False when this process no longer holds it (nothing written)."""
        with write_connection(self._engine) as conn, conn.begin():
            result = conn.execute(
                sa.update(sync_run)
                .where(held(run))
                .values(status=status, ended_at=now(), counts=counts, errors=errors)
            )
        return bool(result.rowcount)

    def latest(self, remote: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """The latest runs, newest first, as plain dicts."""
        query = sa.select(sync_run).order_by(sync_run.c.id.desc()).limit(limit)
        if remote is not None:
            query = query.where(sync_run.c.remote == remote)
        with self._engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def get(self, run_id: int) -> dict[str, Any] | None:
        """One run as a plain dict; None when there is no such run."""
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(sync_run).where(sync_run.c.id == run_id)).first()
        return None if row is None else dict(row._mapping)

    def queue(
        self, remote: str, direction: str, scope: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        """Record a queued run; the run as recorded (before any worker could claim it)."""
        with write_connection(self._engine) as conn, conn.begin():
            row = conn.execute(
                sa.insert(sync_run)
                .values(
                    remote=remote,
                    direction=direction,
                    scope=scope,
                    status="queued",
                    started_at=now(),
                    counts={},
                    errors=[],
                    params=params,
                    attempts=0,
                )
                .returning(*sync_run.c)
            ).one()
        return dict(row._mapping)

    def claim(self) -> ClaimedRun | None:
        """Mark the oldest claimable queued run running under a new attempt; None when
        there is none."""
        older = sync_run.alias("older")
        waiting = (
            sa.select(older.c.id)
            .where(
                older.c.remote == sync_run.c.remote,
                older.c.direction == sync_run.c.direction,
                older.c.status.in_(ACTIVE),
                older.c.params.is_not(None),
                older.c.id < sync_run.c.id,
            )
            .exists()
        )
        query = sa.select(sync_run.c.id).where(
            sync_run.c.status == "queued", sync_run.c.params.is_not(None), ~waiting
        )
        with read_connection(self._engine) as conn, conn.begin():
            if conn.execute(query.limit(1)).first() is None:
                return None  # nothing queued: no write transaction (SQLite's write lock)
        query = query.order_by(sync_run.c.id).limit(1).with_for_update(skip_locked=True)
        with write_connection(self._engine) as conn, conn.begin():
            found = conn.execute(query).scalar_one_or_none()
            if found is None:
                return None
            row = conn.execute(
                sa.update(sync_run)
                .where(sync_run.c.id == found, sync_run.c.status == "queued")
                .values(
                    status="running",
                    heartbeat=now(),
                    attempts=sync_run.c.attempts + 1,
                    counts={},
                    errors=[],
                )
                .returning(sync_run)
            ).one()
        return _claimed(row)

    def beat(self, run: RunRef) -> bool:
        """Record that this process still carries the run out; False when it lost it."""
        with write_connection(self._engine) as conn, conn.begin():
            result = conn.execute(sa.update(sync_run).where(held(run)).values(heartbeat=now()))
        return bool(result.rowcount)

    def give_back(self, run: RunRef) -> bool:
        """Queue a run this process stops carrying out (it shuts down) for another worker."""
        with write_connection(self._engine) as conn, conn.begin():
            result = conn.execute(sa.update(sync_run).where(held(run)).values(status="queued"))
        return bool(result.rowcount)

    def recover(self, stale_after: timedelta) -> int:
        """Queue again the running runs whose process stopped beating; how many."""
        limit = now() - stale_after
        with write_connection(self._engine) as conn, conn.begin():
            result = conn.execute(
                sa.update(sync_run)
                .where(
                    sync_run.c.status == "running",
                    sync_run.c.params.is_not(None),
                    sync_run.c.heartbeat < limit,
                )
                .values(status="queued")
            )
        return int(result.rowcount)
