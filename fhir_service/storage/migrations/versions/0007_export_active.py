"""At most one active (queued or running) export job per client, guaranteed by the
database (https://hl7.org/fhir/uv/bulkdata/STU2/export.html#response---error-status-1:
a second concurrent kick-off is answered 429).

A partial unique index on ``export_job(client_id)`` over the active rows; both SQLite and
PostgreSQL support it. Older duplicates are marked failed first so the index can be built.

Revision ID: 0007_export_active
Revises: 0006_reindex
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_export_active"
down_revision = "0006_reindex"
branch_labels = None
depends_on = None

_ACTIVE = "status IN ('queued', 'running')"


def upgrade() -> None:
    """Fail all but the oldest active job of each client, then add the unique index."""
    op.execute(
        "UPDATE export_job SET status = 'failed', expires = CURRENT_TIMESTAMP, "
        "error = 'Superseded: another export of this client was active' "
        f"WHERE {_ACTIVE} AND EXISTS (SELECT 1 FROM export_job older "
        "WHERE older.client_id = export_job.client_id "
        "AND older.status IN ('queued', 'running') "
        "AND (older.created < export_job.created "
        "OR (older.created = export_job.created AND older.id < export_job.id)))"
    )
    op.create_index(
        "ux_export_job_active_client",
        "export_job",
        ["client_id"],
        unique=True,
        sqlite_where=sa.text(_ACTIVE),
        postgresql_where=sa.text(_ACTIVE),
    )


def downgrade() -> None:
    """Drop the index."""
    op.drop_index("ux_export_job_active_client", table_name="export_job")
