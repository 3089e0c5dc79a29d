"""The sync tables (https://hl7.org/fhir/R4/http.html#versioning).

- ``sync_run``: one row per push or pull run: start, end, status (``queued``,
  ``running``, ``succeeded``, ``partial`` = some conflicts or failed entries, ``failed``,
  ``interrupted``), counts, errors. Runs started over HTTP are jobs: ``params``
  (``{"patient", "types"}``) tells a worker how to carry them out, ``heartbeat`` is the
  carrying process's last sign of life, ``attempts`` how many times a worker claimed the
  run (``storage.sync_runs``). Runs of the ``fhir-service sync`` command have
  no ``params``: their process carries them out and no worker takes them.
- ``sync_id_map``: local (type, id) <-> remote id on one remote, with the local
  version and the remote version (ETag) last exchanged; it makes a second push an
  update, detects remote conflicts with If-Match, and skips unchanged resources.
- ``sync_checkpoint``: named positions per remote (``push`` = last pushed local
  ``seq``; ``pull:<Type>`` = remote ``_lastUpdated`` reached).

The alembic revision ``0003_sync`` creates these tables, ``0008_sync_jobs`` adds the job
columns of ``sync_run``. Their queries are storage's: ``storage.sync_runs`` (runs and
jobs), ``storage.sync_state`` (id map, checkpoints, a run's progress in a page's
transaction) and ``storage.sync_local`` (what to push).
"""

from __future__ import annotations

import sqlalchemy as sa

from fhir_service.storage.tables import UtcDateTime

metadata = sa.MetaData()

sync_run = sa.Table(
    "sync_run",
    metadata,
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
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Index("ix_sync_run_remote", "remote", "direction", "status"),
    sa.Index("ix_sync_run_status", "status", "id"),
)

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
