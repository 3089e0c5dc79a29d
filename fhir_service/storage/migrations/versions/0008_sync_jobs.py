"""Sync runs started over HTTP become database-held jobs (see fhir_service/storage/sync_tables.py).

``sync_run`` gains ``params`` (what a worker needs to carry the run out; NULL for runs of
the ``fhir-service sync`` command, which runs them itself), ``heartbeat`` (last sign of
life of the process carrying the run out) and ``attempts`` (how many times a worker
claimed it), and an index for claiming the oldest queued run.

Revision ID: 0008_sync_jobs
Revises: 0007_export_active
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_sync_jobs"
down_revision = "0007_export_active"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the job columns and the claiming index."""
    with op.batch_alter_table("sync_run") as batch:
        batch.add_column(sa.Column("params", sa.JSON, nullable=True))
        batch.add_column(sa.Column("heartbeat", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0"))
        )
    op.create_index("ix_sync_run_status", "sync_run", ["status", "id"])


def downgrade() -> None:
    """Drop the index and the columns."""
    op.drop_index("ix_sync_run_status", table_name="sync_run")
    with op.batch_alter_table("sync_run") as batch:
        batch.drop_column("attempts")
        batch.drop_column("heartbeat")
        batch.drop_column("params")
