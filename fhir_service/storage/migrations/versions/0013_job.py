"""One job table for every kind of background job (see fhir_service/storage/jobs.py).

Creates ``job`` and moves the rows of ``export_job``, ``reindex_job`` and ``sync_run``
into it, then drops those tables. Queued and running jobs arrive ``queued`` (the
processes that ran them belong to the version before; a reindex resumes from its
checkpoint, an export or a sync run starts over); a sync run of the ``sync`` command
left running becomes ``interrupted``. Ended jobs keep their state, result and expiry
(export files stay reachable under the same job id; reindex triggers stay known, so no
SearchParameter is reindexed twice). The downgrade moves the rows back.

Revision ID: 0013_job
Revises: 0012_version_patient
Create Date: 2026-12-05
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from fhir_service.storage.tables import UtcDateTime

revision = "0013_job"
down_revision = "0012_version_patient"
branch_labels = None
depends_on = None

ACTIVE = ("queued", "running")
ACTIVE_SQL = "state IN ('queued', 'running')"
_meta = sa.MetaData()


def _job_columns() -> list[Any]:
    return [
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
    ]


job = sa.Table("job", _meta, *_job_columns())
export_job = sa.Table(
    "export_job",
    _meta,
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
)
reindex_job = sa.Table(
    "reindex_job",
    _meta,
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
)
sync_run = sa.Table(
    "sync_run",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("remote", sa.Text, nullable=False),
    sa.Column("direction", sa.String(8), nullable=False),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", UtcDateTime(), nullable=False),
    sa.Column("ended_at", UtcDateTime(), nullable=True),
    sa.Column("counts", sa.JSON, nullable=False),
    sa.Column("errors", sa.JSON, nullable=False),
    sa.Column("params", sa.JSON, nullable=True),
    sa.Column("heartbeat", UtcDateTime(), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
)


def _requeued(state: str) -> str:
    return "queued" if state in ACTIVE else state


def _from_export(row: Any) -> dict[str, Any]:
    active = row.status in ACTIVE
    return {
        "id": row.id,
        "kind": "export",
        "state": _requeued(row.status),
        "owner": row.client_id,
        "active_key": f"export:{row.client_id}" if active else None,
        "local": False,
        "params": {
            "export": json.loads(row.params),
            "request": row.request,
            "transaction_time": row.transaction_time.isoformat(),
        },
        "progress": {},
        "message": "queued" if active else row.progress[:300],
        "result": json.loads(row.output) if row.output else None,
        "error": row.error,
        "attempt": 0 if row.status == "queued" else 1,
        "created": row.created,
        "heartbeat": row.heartbeat,
        "finished": None if active else row.heartbeat,
        "expires": row.expires,
    }


def _from_reindex(row: Any) -> dict[str, Any]:
    types = json.loads(row.types)
    progress: dict[str, Any] = {"total": row.total, "done": row.done}
    if row.cursor_type is not None and types is not None:
        progress.update(types=types, cursor_type=row.cursor_type, cursor_id=row.cursor_id)
    return {
        "id": row.id,
        "kind": "reindex",
        "state": _requeued(row.status),
        "unique_key": row.trigger,
        "local": False,
        "params": {"types": types, "reason": row.reason},
        "progress": progress,
        "message": row.status,
        "error": row.error,
        "attempt": 0 if row.status == "queued" else 1,
        "created": row.created,
        "heartbeat": row.heartbeat,
        "finished": row.finished,
    }


def _from_sync(row: Any) -> dict[str, Any]:
    local = row.params is None
    params = row.params or {}
    if row.status in ACTIVE:
        state, result = ("interrupted" if local else "queued"), None
    elif row.status in ("succeeded", "partial"):
        state, result = "completed", {"status": row.status}
    elif row.status == "failed":
        state, result = "failed", {"status": "failed"}
    else:
        state, result = row.status, None
    return {
        "id": str(row.id),
        "kind": "sync",
        "state": state,
        "owner": row.remote,
        "lane": f"{row.direction} {row.remote}",
        "local": local,
        "params": {
            "remote": row.remote,
            "direction": row.direction,
            "scope": row.scope,
            "patient": params.get("patient"),
            "types": params.get("types"),
        },
        "progress": {"counts": row.counts or {}, "errors": row.errors or []},
        "message": state,
        "result": result,
        "attempt": row.attempts or 0,
        "created": row.started_at,
        "heartbeat": row.heartbeat or row.started_at,
        "finished": row.ended_at,
    }


def upgrade() -> None:
    """Create ``job``, move the three tables' rows into it and drop them."""
    op.create_table("job", *_job_columns())
    op.create_index("ix_job_claim", "job", ["state", "kind", "created"])
    op.create_index("ix_job_kind", "job", ["kind", "created"])
    op.create_index(
        "ux_job_active_key",
        "job",
        ["active_key"],
        unique=True,
        sqlite_where=sa.text(ACTIVE_SQL),
        postgresql_where=sa.text(ACTIVE_SQL),
    )
    conn = op.get_bind()
    moved = [
        *(_from_export(r) for r in conn.execute(sa.select(export_job))),
        *(_from_reindex(r) for r in conn.execute(sa.select(reindex_job))),
        *(_from_sync(r) for r in conn.execute(sa.select(sync_run))),
    ]
    for row in moved:
        conn.execute(job.insert().values(**row))
    op.drop_table("export_job")
    op.drop_table("reindex_job")
    op.drop_table("sync_run")


def _old_state(row: Any) -> str:
    return "queued" if row.state in ACTIVE else row.state


def downgrade() -> None:
    """Recreate the three tables as 0012 left them, move the rows back, drop ``job``."""
    export_job.create(op.get_bind())
    op.create_index("ix_export_job_status", "export_job", ["status", "created"])
    op.create_index("ix_export_job_client", "export_job", ["client_id", "status"])
    active = "status IN ('queued', 'running')"
    op.create_index(
        "ux_export_job_active_client",
        "export_job",
        ["client_id"],
        unique=True,
        sqlite_where=sa.text(active),
        postgresql_where=sa.text(active),
    )
    reindex_job.create(op.get_bind())
    op.create_index("ix_reindex_job_status", "reindex_job", ["status", "created"])
    sync_run.create(op.get_bind())
    op.create_index("ix_sync_run_remote", "sync_run", ["remote", "direction", "status"])
    op.create_index("ix_sync_run_status", "sync_run", ["status", "id"])
    conn = op.get_bind()
    rows = conn.execute(sa.select(job).order_by(job.c.created, job.c.id)).all()
    for row in rows:
        if row.kind == "export":
            conn.execute(export_job.insert().values(**_to_export(row)))
        elif row.kind == "reindex":
            conn.execute(reindex_job.insert().values(**_to_reindex(row)))
    runs = [_to_sync(r) for r in rows if r.kind == "sync"]
    for values in [v for v in runs if "id" in v]:  # the ids 0013 moved, first
        conn.execute(sync_run.insert().values(**values))
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            "SELECT setval(pg_get_serial_sequence('sync_run', 'id'), "
            "COALESCE((SELECT MAX(id) FROM sync_run), 0) + 1, false)"
        )
    for values in [v for v in runs if "id" not in v]:
        conn.execute(sync_run.insert().values(**values))
    op.drop_index("ux_job_active_key", table_name="job")
    op.drop_index("ix_job_kind", table_name="job")
    op.drop_index("ix_job_claim", table_name="job")
    op.drop_table("job")


def _to_export(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "client_id": row.owner or "",
        "status": _old_state(row),
        "request": row.params["request"],
        "params": json.dumps(row.params["export"]),
        "transaction_time": datetime.fromisoformat(row.params["transaction_time"]),
        "created": row.created,
        "heartbeat": row.heartbeat,
        "progress": row.message[:200],
        "output": json.dumps(row.result) if row.result else None,
        "error": row.error,
        "expires": row.expires,
    }


def _to_reindex(row: Any) -> dict[str, Any]:
    progress = row.progress or {}
    resumed = progress.get("cursor_type") is not None
    types = progress["types"] if resumed else row.params.get("types")
    return {
        "id": row.id,
        "status": _old_state(row),
        "reason": str(row.params.get("reason", ""))[:300],
        "trigger": row.unique_key,
        "types": json.dumps(types),
        "created": row.created,
        "heartbeat": row.heartbeat,
        "finished": row.finished,
        "total": int(progress.get("total", 0)),
        "done": int(progress.get("done", 0)),
        "cursor_type": progress.get("cursor_type") if resumed else None,
        "cursor_id": progress.get("cursor_id") if resumed else None,
        "error": row.error,
    }


def _to_sync(row: Any) -> dict[str, Any]:
    status = (row.result or {}).get("status") or _old_state(row)
    progress = row.progress or {}
    values: dict[str, Any] = {
        "remote": row.params["remote"],
        "direction": row.params["direction"],
        "scope": row.params.get("scope") or "changed",
        "status": "interrupted" if row.local and status == "queued" else status,
        "started_at": row.created,
        "ended_at": row.finished,
        "counts": progress.get("counts", {}),
        "errors": progress.get("errors", []),
        "params": None
        if row.local
        else {"patient": row.params.get("patient"), "types": row.params.get("types")},
        "heartbeat": row.heartbeat,
        "attempts": row.attempt,
    }
    if row.id.isdigit():
        values["id"] = int(row.id)
    return values
