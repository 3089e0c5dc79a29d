"""The ``export_job`` table: Bulk Data export jobs and their state
(https://hl7.org/fhir/uv/bulkdata/STU2/export.html).

Created by migration ``0005_export``. ``params`` and ``output`` are JSON text so that
both databases store them alike. ``ux_export_job_active_client`` (migration
``0007_export_active``) lets each client have at most one queued or running job.
"""

from __future__ import annotations

import sqlalchemy as sa

from fhir_service.storage.tables import UtcDateTime

metadata = sa.MetaData()
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
