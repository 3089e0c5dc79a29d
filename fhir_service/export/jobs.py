"""Export jobs in the database: create, claim, progress, finish, cancel, expire
(https://hl7.org/fhir/uv/bulkdata/STU2/export.html#bulk-data-kick-off-request).

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
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from fhir_service.export.tables import export_job
from fhir_service.storage.jobs import read_connection, write_connection

Level = Literal["system", "patient", "group"]
ACTIVE = ("queued", "running")


@dataclass(frozen=True)
class ExportParams:
    """What a kick-off asked for (the parameters of the Bulk Data IG)."""

    level: Level = "system"
    types: list[str] | None = None
    since: datetime | None = None
    patients: list[str] | None = None
    group: str | None = None
    deidentify: bool = False
    type_filters: dict[str, list[str]] | None = None
    """``_typeFilter``: resource type -> search queries (a resource matching any is kept)."""
    elements: list[str] | None = None
    """``_elements``: ``Type.element`` or ``element`` names."""
    deid_rules: dict[str, Any] | None = None
    """``_deidRules``: de-identification rules replacing the default ones."""

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "level": self.level,
            "types": self.types,
            "since": self.since.isoformat() if self.since else None,
            "patients": self.patients,
            "group": self.group,
            "deidentify": self.deidentify,
            "type_filters": self.type_filters,
            "elements": self.elements,
            "deid_rules": self.deid_rules,
        }
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> ExportParams:
        data = json.loads(text)
        since = datetime.fromisoformat(data["since"]) if data.get("since") else None
        return cls(
            level=data["level"],
            types=data.get("types"),
            since=since,
            patients=data.get("patients"),
            group=data.get("group"),
            deidentify=bool(data.get("deidentify")),
            type_filters=data.get("type_filters"),
            elements=data.get("elements"),
            deid_rules=data.get("deid_rules"),
        )


@dataclass
class Job:
    """One row of ``export_job``."""

    id: str
    client_id: str
    status: str
    request: str
    params: ExportParams
    transaction_time: datetime
    created: datetime
    heartbeat: datetime
    progress: str
    output: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    expires: datetime | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def _job(row: Any) -> Job:
    return Job(
        id=row.id,
        client_id=row.client_id,
        status=row.status,
        request=row.request,
        params=ExportParams.from_json(row.params),
        transaction_time=row.transaction_time,
        created=row.created,
        heartbeat=row.heartbeat,
        progress=row.progress,
        output=json.loads(row.output) if row.output else {},
        error=row.error,
        expires=row.expires,
    )


class JobStore:
    """The job table on one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _read(self) -> Connection:
        return read_connection(self.engine)

    def _write(self) -> Connection:
        return write_connection(self.engine)

    def create(self, client_id: str, request: str, params: ExportParams) -> Job | None:
        """A queued job whose transactionTime is now; None when the client already has a
        queued or running job (the unique index ``ux_export_job_active_client`` decides, so
        concurrent kick-offs cannot both pass)."""
        now = _now()
        row = {
            "id": str(uuid.uuid4()),
            "client_id": client_id,
            "status": "queued",
            "request": request,
            "params": params.to_json(),
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

    def get(self, job_id: str) -> Job | None:
        with self._read() as conn:
            row = conn.execute(sa.select(export_job).where(export_job.c.id == job_id)).first()
        return _job(row) if row is not None else None

    def claim(self) -> Job | None:
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
