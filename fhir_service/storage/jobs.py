"""Background jobs of every kind (Bulk Data export, reindex, sync) in one table, ``job``,
and its create, claim, heartbeat, report, end, cancel, give-back and recover queries
(asynchronous pattern of https://hl7.org/fhir/R4/async.html).

States: ``queued`` -> ``running`` -> ``completed`` | ``failed``; ``cancelled`` while
queued or running (or, when asked, after the end: an export whose files are to go);
``interrupted``: a ``local`` job whose process died. A claim marks the oldest claimable
queued job ``running`` and counts one ``attempt``: on PostgreSQL the candidate is read
with ``SELECT ... FOR UPDATE SKIP LOCKED``, on SQLite inside the write transaction
(``BEGIN IMMEDIATE``), and on both the ``UPDATE ... WHERE state = 'queued'`` decides, so
two processes never hold the same job. The attempt is the fencing token of a
``JobRef``: progress and the end of a job are written only while it is ``running``
under that attempt, so a process that lost its job (cancelled, or taken over after its
heartbeat went stale) changes nothing. ``recover`` queues again the running jobs whose
heartbeat is older than the stale limit.

Keys a kind may set: ``unique_key`` (one job ever, e.g. a reindex trigger),
``active_key`` (one queued or running job at a time, e.g. an export client) and
``lane`` (jobs of one lane run one after another in creation order, e.g. a sync
remote and direction). ``local`` jobs run in the process that created them (a sync
run of the command line, which a runner could not carry out with the command's
options): they are never claimed or recovered by a runner and hold up no lane.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from fhir_service.storage.engine import BEGIN_OPTION
from fhir_service.storage.store import SqlStore
from fhir_service.storage.tables import UtcDateTime

ACTIVE = ("queued", "running")
ACTIVE_SQL = "state IN ('queued', 'running')"

metadata = sa.MetaData()

job = sa.Table(
    "job",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("owner", sa.Text, nullable=True),
    sa.Column("unique_key", sa.String(200), nullable=True, unique=True),
    sa.Column("active_key", sa.String(200), nullable=True),
    sa.Column("lane", sa.Text, nullable=True),
    sa.Column("local", sa.Boolean, nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("progress", sa.JSON, nullable=False),
    sa.Column("message", sa.String(300), nullable=False),
    sa.Column("result", sa.JSON, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("worker", sa.String(200), nullable=True),
    sa.Column("created", UtcDateTime(), nullable=False),
    sa.Column("heartbeat", UtcDateTime(), nullable=False),
    sa.Column("finished", UtcDateTime(), nullable=True),
    sa.Column("expires", UtcDateTime(), nullable=True),
    sa.Index("ix_job_claim", "state", "kind", "created"),
    sa.Index("ix_job_kind", "kind", "created"),
    sa.Index(
        "ux_job_active_key",
        "active_key",
        unique=True,
        sqlite_where=sa.text(ACTIVE_SQL),
        postgresql_where=sa.text(ACTIVE_SQL),
    ),
)
"""Created by migration ``0013_job``."""


@dataclass(frozen=True)
class JobRef:
    """A job as one process holds it: its id and the attempt (claim) that process made."""

    id: str
    attempt: int


@dataclass(frozen=True)
class Job:
    """One row of ``job``: what every kind's job shows, read the same way for all."""

    id: str
    kind: str
    state: str
    owner: str | None
    params: dict[str, Any]
    progress: dict[str, Any]
    message: str
    result: dict[str, Any] | None
    error: str | None
    attempt: int
    worker: str | None
    created: datetime
    heartbeat: datetime
    finished: datetime | None
    expires: datetime | None
    unique_key: str | None
    lane: str | None
    local: bool

    @property
    def ref(self) -> JobRef:
        return JobRef(self.id, self.attempt)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


def now() -> datetime:
    return datetime.now(UTC)


WORKER = f"{socket.gethostname()[:120]}:{os.getpid()}"
"""This process, as recorded in the ``worker`` column of the jobs it claims."""


def _job(row: Any) -> Job:
    return Job(
        id=row.id,
        kind=row.kind,
        state=row.state,
        owner=row.owner,
        params=row.params or {},
        progress=row.progress or {},
        message=row.message,
        result=row.result,
        error=row.error,
        attempt=row.attempt,
        worker=row.worker,
        created=row.created,
        heartbeat=row.heartbeat,
        finished=row.finished,
        expires=row.expires,
        unique_key=row.unique_key,
        lane=row.lane,
        local=bool(row.local),
    )


def held(ref: JobRef) -> sa.ColumnElement[bool]:
    """The job is ``running`` under the attempt ``ref`` holds."""
    return sa.and_(job.c.id == ref.id, job.c.attempt == ref.attempt, job.c.state == "running")


def read_connection(engine: Engine) -> Connection:
    """A connection whose transactions only read (deferred on SQLite)."""
    return engine.connect().execution_options(**{BEGIN_OPTION: "DEFERRED"})


def write_connection(engine: Engine) -> Connection:
    """A connection whose transactions write (SQLite's write lock taken at BEGIN)."""
    return engine.connect().execution_options(**{BEGIN_OPTION: "IMMEDIATE"})


def report_in(
    conn: Connection, ref: JobRef, message: str, progress: dict[str, Any] | None = None
) -> bool:
    """Record progress and beat the heartbeat in the caller's transaction (a reindex
    batch, a sync page); False when ``ref`` no longer holds the job (the caller then
    rolls its work back and stops)."""
    values: dict[str, Any] = {"message": message[:300], "heartbeat": now()}
    if progress is not None:
        values["progress"] = progress
    return bool(conn.execute(job.update().where(held(ref)).values(**values)).rowcount)


class Jobs:
    """The ``job`` table of one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def of(cls, store: SqlStore) -> Jobs:
        """The job table on the store's database."""
        return cls(store.engine)

    def read(self) -> Connection:
        return read_connection(self.engine)

    def write(self) -> Connection:
        return write_connection(self.engine)

    def create(
        self,
        kind: str,
        params: dict[str, Any],
        *,
        owner: str | None = None,
        unique_key: str | None = None,
        active_key: str | None = None,
        lane: str | None = None,
        progress: dict[str, Any] | None = None,
        local: bool = False,
        started: bool = False,
    ) -> Job | None:
        """A queued job (``started``: already running, held by this process under
        attempt 1), as created: a runner of any process may claim it the moment it is
        committed, and the caller answers with what it created, not with a later state.
        None when ``unique_key`` or ``active_key`` is taken (the unique indexes decide,
        so concurrent requests cannot both pass)."""
        at = now()
        job_id = str(uuid.uuid4())
        row = {
            "id": job_id,
            "kind": kind,
            "state": "running" if started else "queued",
            "worker": WORKER if started else None,
            "owner": owner,
            "unique_key": unique_key,
            "active_key": active_key,
            "lane": lane,
            "local": local,
            "params": params,
            "progress": progress or {},
            "message": "started" if started else "queued",
            "attempt": 1 if started else 0,
            "created": at,
            "heartbeat": at,
        }
        try:
            with self.write() as conn, conn.begin():
                conn.execute(job.insert().values(**row))
        except sa.exc.IntegrityError:
            return None
        unset = {"result": None, "error": None, "finished": None, "expires": None}
        return _job(SimpleNamespace(**row, **unset))

    def get(self, job_id: str, kind: str | None = None) -> Job | None:
        """The job ``job_id`` (of ``kind`` when given); None when there is none."""
        query = sa.select(job).where(job.c.id == job_id[:36])
        if kind is not None:
            query = query.where(job.c.kind == kind)
        with self.read() as conn:
            row = conn.execute(query).first()
        return _job(row) if row is not None else None

    def recent(
        self, kind: str | None = None, *, owner: str | None = None, limit: int = 50
    ) -> list[Job]:
        """The newest jobs first (of one kind, one owner when given)."""
        query = sa.select(job).order_by(job.c.created.desc(), job.c.id).limit(limit)
        if kind is not None:
            query = query.where(job.c.kind == kind)
        if owner is not None:
            query = query.where(job.c.owner == owner)
        with self.read() as conn:
            return [_job(r) for r in conn.execute(query)]

    def active(self, kind: str) -> list[Job]:
        """Queued and running jobs of ``kind``, oldest first."""
        query = (
            sa.select(job)
            .where(job.c.kind == kind, job.c.state.in_(ACTIVE))
            .order_by(job.c.created, job.c.id)
        )
        with self.read() as conn:
            return [_job(r) for r in conn.execute(query)]

    def known_keys(self, keys: list[str]) -> set[str]:
        """Which of ``keys`` are the ``unique_key`` of a job."""
        if not keys:
            return set()
        with self.read() as conn:
            rows = conn.execute(sa.select(job.c.unique_key).where(job.c.unique_key.in_(keys)))
            return {r.unique_key for r in rows}

    def _claimable(self, kinds: Collection[str], job_id: str | None) -> sa.Select[Any]:
        older = job.alias("older")
        waiting = (
            sa.select(older.c.id)
            .where(
                older.c.lane == job.c.lane,
                older.c.state.in_(ACTIVE),
                older.c.local.is_(False),
                sa.or_(
                    older.c.created < job.c.created,
                    sa.and_(older.c.created == job.c.created, older.c.id < job.c.id),
                ),
            )
            .exists()
        )
        query = sa.select(job.c.id).where(
            job.c.state == "queued", job.c.kind.in_(list(kinds)), ~waiting
        )
        query = query.where(job.c.local.is_(False))
        return query if job_id is None else query.where(job.c.id == job_id)

    def claim(self, kinds: Collection[str], job_id: str | None = None) -> Job | None:
        """Mark the oldest claimable queued job of ``kinds`` (or the queued job ``job_id``)
        running under a new attempt; None when there is none. ``local`` jobs are never
        claimed, and do not hold up their lane."""
        if not kinds:
            return None
        query = self._claimable(kinds, job_id)
        with self.read() as conn, conn.begin():
            if conn.execute(query.limit(1)).first() is None:
                return None  # nothing queued: no write transaction (SQLite's write lock)
        query = query.order_by(job.c.created, job.c.id).limit(1).with_for_update(skip_locked=True)
        with self.write() as conn, conn.begin():
            found = conn.execute(query).scalar_one_or_none()
            if found is None:
                return None
            at = now()
            row = conn.execute(
                job.update()
                .where(job.c.id == found, job.c.state == "queued")
                .values(
                    state="running",
                    attempt=job.c.attempt + 1,
                    worker=WORKER,
                    heartbeat=at,
                    message="started",
                )
                .returning(*job.c)
            ).first()
        return _job(row) if row is not None else None

    def _update(self, where: sa.ColumnElement[bool], **values: Any) -> bool:
        with self.write() as conn, conn.begin():
            return bool(conn.execute(job.update().where(where).values(**values)).rowcount)

    def holds(self, ref: JobRef) -> bool:
        """Whether the job is still ``running`` under ``ref``'s attempt."""
        with self.read() as conn:
            return conn.execute(sa.select(job.c.id).where(held(ref))).first() is not None

    def beat(self, ref: JobRef) -> bool:
        """Record that this process still runs the job; False when it lost it."""
        return self._update(held(ref), heartbeat=now())

    def report(self, ref: JobRef, message: str, progress: dict[str, Any] | None = None) -> bool:
        """Record progress and beat; False when this process no longer holds the job."""
        with self.write() as conn, conn.begin():
            return report_in(conn, ref, message, progress)

    def complete(
        self,
        ref: JobRef,
        result: dict[str, Any] | None = None,
        *,
        message: str = "completed",
        progress: dict[str, Any] | None = None,
        expires: datetime | None = None,
    ) -> bool:
        """End the job with its result; False when this process no longer holds it."""
        values: dict[str, Any] = {"progress": progress} if progress is not None else {}
        at = now()
        return self._update(
            held(ref),
            state="completed",
            result=result,
            message=message[:300],
            heartbeat=at,
            finished=at,
            expires=expires,
            **values,
        )

    def fail(
        self,
        ref: JobRef,
        error: str,
        *,
        result: dict[str, Any] | None = None,
        progress: dict[str, Any] | None = None,
        expires: datetime | None = None,
    ) -> bool:
        """End the job as failed; False when this process no longer holds it."""
        values: dict[str, Any] = {"progress": progress} if progress is not None else {}
        at = now()
        return self._update(
            held(ref),
            state="failed",
            error=error[:2000],
            result=result,
            message="failed",
            heartbeat=at,
            finished=at,
            expires=expires,
            **values,
        )

    def settle(self, job_id: str, message: str) -> bool:
        """Complete a queued job without running it (another job did its work)."""
        at = now()
        where = sa.and_(job.c.id == job_id, job.c.state == "queued")
        return self._update(where, state="completed", message=message[:300], finished=at)

    def cancel(self, job_id: str, *, ended_too: bool = False) -> bool:
        """Cancel a queued or running job (with ``ended_too`` also a completed or failed
        one); its runner stops at its next heartbeat or report. False when none was."""
        states = (*ACTIVE, "completed", "failed") if ended_too else ACTIVE
        at = now()
        where = sa.and_(job.c.id == job_id, job.c.state.in_(states))
        return self._update(where, state="cancelled", message="cancelled", finished=at)

    def give_back(self, ref: JobRef) -> bool:
        """Queue a job this process stops running (it shuts down) for another runner."""
        return self._update(held(ref), state="queued", message="queued again")

    def recover(self, stale_after: timedelta) -> int:
        """Queue again the running jobs whose runner stopped beating (its process died);
        they start over or resume from their checkpoint. Returns how many."""
        stale = sa.and_(
            job.c.state == "running",
            job.c.local.is_(False),
            job.c.heartbeat < now() - stale_after,
        )
        with self.write() as conn, conn.begin():
            result = conn.execute(
                job.update().where(stale).values(state="queued", message="queued again")
            )
        return int(result.rowcount)

    def interrupt_local(self, kind: str, lane: str) -> int:
        """Mark ``interrupted`` the local jobs of ``lane`` left running (their process
        died); how many."""
        where = sa.and_(
            job.c.kind == kind, job.c.lane == lane, job.c.local.is_(True), job.c.state == "running"
        )
        with self.write() as conn, conn.begin():
            result = conn.execute(
                job.update().where(where).values(state="interrupted", finished=now())
            )
        return int(result.rowcount)

    def expired(self, kind: str) -> list[str]:
        """Ids of the ended jobs of ``kind`` past their expiry, and its cancelled ones."""
        ended = sa.or_(
            job.c.state == "cancelled",
            sa.and_(job.c.expires.is_not(None), job.c.expires <= now(), job.c.state.not_in(ACTIVE)),
        )
        with self.read() as conn:
            return [
                r.id for r in conn.execute(sa.select(job.c.id).where(job.c.kind == kind, ended))
            ]

    def delete(self, job_id: str) -> None:
        with self.write() as conn, conn.begin():
            conn.execute(job.delete().where(job.c.id == job_id))

    def sweep(self, kind: str, discard: Callable[[str], object]) -> int:
        """Delete the ended jobs of ``kind`` past their expiry and its cancelled ones, each
        after ``discard(job_id)`` removed what it left (its files); how many."""
        expired = self.expired(kind)
        for job_id in expired:
            discard(job_id)
            self.delete(job_id)
        return len(expired)
