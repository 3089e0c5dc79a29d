"""The ``export_job`` table: Bulk Data export jobs and their state
(https://hl7.org/fhir/uv/bulkdata/STU2/export.html).

Created by migration ``0005_export``. ``params`` and ``output`` are JSON text so that
both databases store them alike.
"""

from __future__ import annotations

import sqlalchemy as sa

from fhir_service.storage.tables import UtcDateTime

metadata = sa.MetaData()

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
)
