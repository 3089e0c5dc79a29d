"""Sync state tables: runs, local<->remote id map, checkpoints (storage/sync_tables.py).

Revision ID: 0003_sync
Revises: 0002_search
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_sync"
down_revision = "0002_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the sync tables."""
    op.create_table(
        "sync_run",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("remote", sa.Text, nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("counts", sa.JSON, nullable=False),
        sa.Column("errors", sa.JSON, nullable=False),
    )
    op.create_index("ix_sync_run_remote", "sync_run", ["remote", "direction", "status"])
    op.create_table(
        "sync_id_map",
        sa.Column("remote", sa.Text, primary_key=True),
        sa.Column("type", sa.String(64), primary_key=True),
        sa.Column("local_id", sa.String(64), primary_key=True),
        sa.Column("remote_id", sa.String(64), nullable=False),
        sa.Column("local_version", sa.Integer, nullable=True),
        sa.Column("remote_version", sa.String(64), nullable=True),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.UniqueConstraint("remote", "type", "remote_id", name="uq_sync_id_map_remote_id"),
    )
    op.create_table(
        "sync_checkpoint",
        sa.Column("remote", sa.Text, primary_key=True),
        sa.Column("name", sa.String(80), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    """Drop the sync tables."""
    op.drop_table("sync_checkpoint")
    op.drop_table("sync_id_map")
    op.drop_index("ix_sync_run_remote", table_name="sync_run")
    op.drop_table("sync_run")
