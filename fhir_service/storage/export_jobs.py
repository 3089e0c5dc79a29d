"""Bulk Data export jobs in the database: the ``export_job`` table and its create, claim,
heartbeat, finish, cancel, recover and expiry queries
(https://build.fhir.org/ig/HL7/bulk-data/export.html#bulk-data-kick-off-request).

Created by migration ``0005_export``. ``params`` and ``output`` are JSON text so that
both databases store them alike; storage keeps ``params`` as the text the export layer
gave (``ExportParams.to_json``). ``ux_export_job_active_client`` (migration
``0007_export_active``) lets each client have at most one queued or running job.

Job states: ``queued`` -> ``running`` -> ``completed`` | ``failed``; ``cancelled`` at any
time. Workers claim the oldest queued job with ``SELECT ... FOR UPDATE SKIP LOCKED`` on
PostgreSQL (a plain SELECT inside SQLite's write transaction), so several service
processes never run the same job. A running job whose heartbeat is older than the stale
limit (its process died) is queued again by ``recover``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from fhir_service.storage.jobs import read_connection, write_connection
from fhir_service.storage.store import SqlStore
from fhir_service.storage.tables import UtcDateTime

metadata = sa.MetaData()
ACTIVE = ("queued", "running")
ACTIVE_SQL = "status IN ('queued', 'running')"

export_job = sa.Table(
    "export_job",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("client_id", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("request", sa.Text, nullable=False),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("transaction_time", UtcDateTime(), nullable=False),
    sa.Column("created", UtcDateTime(), nullable=False),
    sa.Column("heartbeat", UtcDateTime(), nullable=False),
    sa.Column("progress", sa.String(200), nullable=False),
    sa.Column("output", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("expires", UtcDateTime(), nullable=True),
    sa.Index("ix_export_job_status", "status", "created"),
    sa.Index("ix_export_job_client", "client_id", "status"),
    sa.Index(
        "ux_export_job_active_client",
        "client_id",
        unique=True,
        sqlite_where=sa.text(ACTIVE_SQL),
        postgresql_where=sa.text(ACTIVE_SQL),
    ),
)


@dataclass
class ExportJobRow:
    """One row of ``export_job``; ``params`` is the JSON text the job was created with."""

    id: str
    client_id: str
    status: str
    request: str
    params: str
    transaction_time: datetime
    created: datetime
    heartbeat: datetime
    progress: str
    output: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    expires: datetime | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def _row(row: Any) -> ExportJobRow:
    return ExportJobRow(
        id=row.id,
        client_id=row.client_id,
        status=row.status,
        request=row.request,
        params=row.params,
        transaction_time=row.transaction_time,
        created=row.created,
        heartbeat=row.heartbeat,
        progress=row.progress,
        output=json.loads(row.output) if row.output else {},
        error=row.error,
        expires=row.expires,
    )


class ExportJobs:
    """The ``export_job`` table of one database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @classmethod
    def of(cls, store: SqlStore) -> ExportJobs:
        """The job table on the store's database."""
        return cls(store.engine)

    def _read(self) -> Connection:
        return read_connection(self._engine)

    def _write(self) -> Connection:
        return write_connection(self._engine)

    def create(self, client_id: str, request: str, params: str) -> ExportJobRow | None:
        """A queued job whose transactionTime is now; None when the client already has a
        queued or running job (the unique index ``ux_export_job_active_client`` decides, so
        concurrent kick-offs cannot both pass)."""
        now = _now()
        row = {
            "id": str(uuid.uuid4()),
            "client_id": client_id,
            "status": "queued",
            "request": request,
            "params": params,
            "transaction_time": now,
            "created": now,
            "heartbeat": now,
            "progress": "queued",
        }
        try:
            with self._write() as conn, conn.begin():
                conn.execute(export_job.insert().values(**row))
        except sa.exc.IntegrityError:
            return None
        job = self.get(str(row["id"]))
        assert job is not None
        return job

    def get(self, job_id: str) -> ExportJobRow | None:
        with self._read() as conn:
            row = conn.execute(sa.select(export_job).where(export_job.c.id == job_id)).first()
        return _row(row) if row is not None else None

    def claim(self) -> ExportJobRow | None:
        """Mark the oldest queued job running and return it (None when there is none)."""
        queued = sa.select(export_job.c.id).where(export_job.c.status == "queued").limit(1)
        with self._read() as conn, conn.begin():
            if conn.execute(queued).first() is None:
                return None  # nothing queued: no write transaction (SQLite's write lock)
        with self._write() as conn, conn.begin():
            row = conn.execute(
                sa.select(export_job)
                .where(export_job.c.status == "queued")
                .order_by(export_job.c.created)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return None
            conn.execute(
                export_job.update()
                .where(export_job.c.id == row.id)
                .values(status="running", heartbeat=_now(), progress="started")
            )
        return self.get(row.id)

    def _update(self, job_id: str, only_if: tuple[str, ...], **values: Any) -> bool:
        with self._write() as conn, conn.begin():
            result = conn.execute(
                export_job.update()
                .where(export_job.c.id == job_id, export_job.c.status.in_(only_if))
                .values(**values)
            )
        return bool(result.rowcount)

    def beat(self, job_id: str, progress: str) -> bool:
        """Record progress; False when the job is no longer running (cancelled)."""
        return self._update(job_id, ("running",), heartbeat=_now(), progress=progress[:200])

    def complete(self, job_id: str, output: dict[str, Any], expires: datetime) -> bool:
        return self._update(
            job_id,
            ("running",),
            status="completed",
            output=json.dumps(output),
            progress="completed",
            heartbeat=_now(),
            expires=expires,
        )

    def fail(self, job_id: str, error: str, expires: datetime) -> bool:
        return self._update(
            job_id, ("running", "queued"), status="failed", error=error, expires=expires
        )

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued, running or finished job (its files go with the next sweep)."""
        return self._update(
            job_id,
            ("queued", "running", "completed", "failed"),
            status="cancelled",
            expires=_now(),
        )

    def recover(self, stale_after: timedelta) -> int:
        """Queue again the running jobs whose worker stopped beating; how many."""
        limit = _now() - stale_after
        with self._write() as conn, conn.begin():
            result = conn.execute(
                export_job.update()
                .where(export_job.c.status == "running", export_job.c.heartbeat < limit)
                .values(status="queued", progress="queued again after a restart")
            )
        return int(result.rowcount)

    def expired(self) -> list[str]:
        """Ids of finished or cancelled jobs past their expiry."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(export_job.c.id).where(
                    export_job.c.expires.is_not(None),
                    export_job.c.expires <= _now(),
                    export_job.c.status.not_in(ACTIVE),
                )
            )
            return [r.id for r in rows]

    def delete(self, job_id: str) -> None:
        with self._write() as conn, conn.begin():
            conn.execute(export_job.delete().where(export_job.c.id == job_id))
