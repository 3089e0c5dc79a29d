"""The sync tables (https://hl7.org/fhir/R4/http.html#versioning).

- ``sync_id_map``: local (type, id) <-> remote id on one remote, with the local
  version and the remote version (ETag) last exchanged; it makes a second push an
  update, detects remote conflicts with If-Match, and skips unchanged resources.
- ``sync_checkpoint``: named positions per remote (``push`` = last pushed local
  ``seq``; ``pull:<Type>`` = remote ``_lastUpdated`` reached).

The alembic revision ``0003_sync`` creates these tables. Sync runs themselves are jobs
of the one job table (``storage.jobs``, kind ``sync``; migration ``0013_job`` moved the
``sync_run`` rows there). The queries are storage's: ``storage.sync_state`` (id map,
checkpoints, a run's progress in a page's transaction) and ``storage.sync_local`` (what
to push).
"""

from __future__ import annotations

import sqlalchemy as sa

from fhir_service.storage.tables import UtcDateTime

metadata = sa.MetaData()

sync_id_map = sa.Table(
    "sync_id_map",
    metadata,
    sa.Column("remote", sa.Text, primary_key=True),
    sa.Column("type", sa.String(64), primary_key=True),
    sa.Column("local_id", sa.String(64), primary_key=True),
    sa.Column("remote_id", sa.String(64), nullable=False),
    sa.Column("local_version", sa.Integer, nullable=True),
    sa.Column("remote_version", sa.String(64), nullable=True),
    sa.Column("deleted", sa.Boolean, nullable=False, default=False),
    sa.UniqueConstraint("remote", "type", "remote_id", name="uq_sync_id_map_remote_id"),
)

sync_checkpoint = sa.Table(
    "sync_checkpoint",
    metadata,
    sa.Column("remote", sa.Text, primary_key=True),
    sa.Column("name", sa.String(80), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)
