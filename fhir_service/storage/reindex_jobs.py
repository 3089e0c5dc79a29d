"""Reindex jobs in the database: create, claim, checkpoint, finish, cancel, recover
(https://hl7.org/fhir/R4/searchparameter.html).

Job states: ``queued`` -> ``running`` -> ``completed`` | ``failed``; ``cancelled`` while
queued or running. Workers claim the oldest queued job with ``SELECT ... FOR UPDATE SKIP
LOCKED`` on PostgreSQL (a plain SELECT inside SQLite's write transaction), so several
service processes never run the same job. The checkpoint (type and last resource id
done) is written in the transaction of each batch, so a job resumes where it stopped; a
running job whose heartbeat is older than the stale limit (its process died) is queued
again by ``recover``. ``trigger`` names the SearchParameter version a job was made for
(``SearchParameter/x/_history/2``); its unique index makes replicas create one job each.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from fhir_service.search.registry import Registry
from fhir_service.storage.jobs import read_connection, write_connection
from fhir_service.storage.search_index import registry_for
from fhir_service.storage.store import SqlStore
from fhir_service.storage.tables import UtcDateTime

ACTIVE = ("queued", "running")

reindex_metadata = sa.MetaData()

reindex_job = sa.Table(
    "reindex_job",
    reindex_metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(300), nullable=False),
    sa.Column("trigger", sa.String(200), nullable=True, unique=True),
    sa.Column("types", sa.Text, nullable=False),
    sa.Column("created", UtcDateTime(), nullable=False),
    sa.Column("heartbeat", UtcDateTime(), nullable=False),
    sa.Column("finished", UtcDateTime(), nullable=True),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("done", sa.Integer, nullable=False),
    sa.Column("cursor_type", sa.String(64), nullable=True),
    sa.Column("cursor_id", sa.String(64), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Index("ix_reindex_job_status", "status", "created"),
)
"""Created by migration ``0006_reindex``; ``types`` is a JSON list (``null``: every
stored type, fixed when the job starts)."""


@dataclass(frozen=True)
class ReindexJob:
    """One row of ``reindex_job``."""

    id: str
    status: str
    reason: str
    trigger: str | None
    types: list[str] | None
    created: datetime
    heartbeat: datetime
    finished: datetime | None
    total: int
    done: int
    cursor_type: str | None
    cursor_id: str | None
    error: str | None


def _now() -> datetime:
    return datetime.now(UTC)


def _job(row: Any) -> ReindexJob:
    return ReindexJob(
        id=row.id,
        status=row.status,
        reason=row.reason,
        trigger=row.trigger,
        types=json.loads(row.types),
        created=row.created,
        heartbeat=row.heartbeat,
        finished=row.finished,
        total=row.total,
        done=row.done,
        cursor_type=row.cursor_type,
        cursor_id=row.cursor_id,
        error=row.error,
    )


class ReindexJobs:
    """The job table on one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def of(cls, store: SqlStore) -> ReindexJobs:
        """The job table on the store's database."""
        return cls(store.engine)

    def registry(self, core: Registry) -> Registry:
        """``core`` plus the active SearchParameters stored in this database
        (https://hl7.org/fhir/R4/searchparameter.html)."""
        with self.read() as conn:
            return registry_for(conn, core)

    def read(self) -> Connection:
        return read_connection(self.engine)

    def write(self) -> Connection:
        return write_connection(self.engine)

    def create(
        self, types: list[str] | None, reason: str, trigger: str | None = None
    ) -> ReindexJob | None:
        """A queued job; None when a job for ``trigger`` exists already."""
        now = _now()
        job_id = str(uuid.uuid4())
        row = {
            "id": job_id,
            "status": "queued",
            "reason": reason[:300],
            "trigger": trigger,
            "types": json.dumps(sorted(set(types)) if types is not None else None),
            "created": now,
            "heartbeat": now,
            "total": 0,
            "done": 0,
        }
        try:
            with self.write() as conn, conn.begin():
                conn.execute(reindex_job.insert().values(**row))
        except IntegrityError:
            return None
        return self.get(job_id)

    def get(self, job_id: str) -> ReindexJob | None:
        with self.read() as conn:
            row = conn.execute(sa.select(reindex_job).where(reindex_job.c.id == job_id)).first()
        return _job(row) if row is not None else None

    def recent(self, limit: int = 50) -> list[ReindexJob]:
        """The newest jobs first."""
        with self.read() as conn:
            rows = conn.execute(
                sa.select(reindex_job)
                .order_by(reindex_job.c.created.desc(), reindex_job.c.id)
                .limit(limit)
            )
            return [_job(r) for r in rows]

    def active(self) -> list[ReindexJob]:
        """Queued and running jobs, oldest first."""
        with self.read() as conn:
            rows = conn.execute(
                sa.select(reindex_job)
                .where(reindex_job.c.status.in_(ACTIVE))
                .order_by(reindex_job.c.created)
            )
            return [_job(r) for r in rows]

    def known_triggers(self, triggers: list[str]) -> set[str]:
        """Which of ``triggers`` already have a job."""
        if not triggers:
            return set()
        with self.read() as conn:
            rows = conn.execute(
                sa.select(reindex_job.c.trigger).where(reindex_job.c.trigger.in_(triggers))
            )
            return {r.trigger for r in rows}

    def claim(self, job_id: str | None = None) -> ReindexJob | None:
        """Mark the oldest queued job (or the queued job ``job_id``) running and return it."""
        query = sa.select(reindex_job.c.id).where(reindex_job.c.status == "queued")
        if job_id is not None:
            query = query.where(reindex_job.c.id == job_id)
        with self.read() as conn, conn.begin():
            if conn.execute(query.limit(1)).first() is None:
                return None  # nothing queued: no write transaction (SQLite's write lock)
        query = query.order_by(reindex_job.c.created).limit(1).with_for_update(skip_locked=True)
        with self.write() as conn, conn.begin():
            found = conn.execute(query).scalar_one_or_none()
            if found is None:
                return None
            conn.execute(
                reindex_job.update()
                .where(reindex_job.c.id == found)
                .values(status="running", heartbeat=_now())
            )
        return self.get(found)

    def _update(self, job_id: str, only_if: tuple[str, ...], **values: Any) -> bool:
        with self.write() as conn, conn.begin():
            result = conn.execute(
                reindex_job.update()
                .where(reindex_job.c.id == job_id, reindex_job.c.status.in_(only_if))
                .values(**values)
            )
        return bool(result.rowcount)

    def start(self, job_id: str, types: list[str], total: int) -> bool:
        """Fix the types and the total of a job starting for the first time."""
        return self._update(
            job_id, ("running",), types=json.dumps(types), total=total, heartbeat=_now()
        )

    def absorb(self, job: ReindexJob, types: list[str]) -> list[str]:
        """Complete the queued jobs whose types ``job``, starting now, covers (``types``;
        a job of every type covers every job): each of its batches reads the
        SearchParameters in force after theirs were stored. Returns their ids."""
        covered = set(types)
        absorbed = []
        for other in self.active():
            if other.status != "queued" or other.id == job.id:
                continue
            if other.types is None and job.types is not None:
                continue  # every type: covered only by a job of every type
            if other.types is not None and not set(other.types) <= covered:
                continue
            reason = f"{other.reason} (covered by job {job.id})"[:300]
            done = self._update(
                other.id, ("queued",), status="completed", reason=reason, finished=_now()
            )
            if done:
                absorbed.append(other.id)
        return absorbed

    @staticmethod
    def checkpoint(
        conn: Connection,
        job: ReindexJob,
        after: tuple[str | None, str | None],
        reached: tuple[str, str],
        count: int,
    ) -> bool:
        """Move the checkpoint from ``after`` to ``reached`` (type, last id) in the
        caller's (the batch's) transaction. False when the job is no longer running
        (cancelled) or another worker moved the checkpoint (it took over a job whose
        heartbeat went stale): the caller then rolls its batch back and stops."""
        result = conn.execute(
            reindex_job.update()
            .where(
                reindex_job.c.id == job.id,
                reindex_job.c.status == "running",
                reindex_job.c.cursor_type.is_not_distinct_from(after[0]),
                reindex_job.c.cursor_id.is_not_distinct_from(after[1]),
            )
            .values(
                cursor_type=reached[0],
                cursor_id=reached[1],
                done=reindex_job.c.done + count,
                heartbeat=_now(),
            )
        )
        return bool(result.rowcount)

    def complete(self, job_id: str) -> bool:
        return self._update(job_id, ("running",), status="completed", finished=_now())

    def fail(self, job_id: str, error: str) -> bool:
        return self._update(job_id, ACTIVE, status="failed", error=error[:2000], finished=_now())

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running job (the worker stops after its current batch)."""
        return self._update(job_id, ACTIVE, status="cancelled", finished=_now())

    def recover(self, stale_after: timedelta) -> int:
        """Queue again the running jobs whose worker stopped beating; they resume from
        their checkpoint. Returns how many."""
        limit = _now() - stale_after
        with self.write() as conn, conn.begin():
            result = conn.execute(
                reindex_job.update()
                .where(reindex_job.c.status == "running", reindex_job.c.heartbeat < limit)
                .values(status="queued")
            )
        return int(result.rowcount)
