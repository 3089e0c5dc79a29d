"""Bulk Data export jobs (https://hl7.org/fhir/uv/bulkdata/STU2/export.html).

Revision ID: 0005_export
Revises: 0004_security
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_export"
down_revision = "0004_security"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``export_job``."""
    op.create_table(
        "export_job",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("request", sa.Text, nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("transaction_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat", sa.DateTime(timezone=True), nullable=False),
        sa.Column("progress", sa.String(200), nullable=False),
        sa.Column("output", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_export_job_status", "export_job", ["status", "created"])
    op.create_index("ix_export_job_client", "export_job", ["client_id", "status"])


def downgrade() -> None:
    """Drop ``export_job``."""
    op.drop_index("ix_export_job_client", table_name="export_job")
    op.drop_index("ix_export_job_status", table_name="export_job")
    op.drop_table("export_job")
