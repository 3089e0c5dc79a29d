"""Drop the (res_type, res_id) index of the ranged search tables (date, number,
quantity): their other index starts with the same two columns and serves the same
lookups (dropping a resource's rows, probing a candidate), so the extra B-tree only
cost writes on every indexed version.

Revision ID: 0009_ranged_index
Revises: 0008_sync_jobs
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0009_ranged_index"
down_revision = "0008_sync_jobs"
branch_labels = None
depends_on = None

_TABLES = ("sp_date", "sp_number", "sp_quantity")


def upgrade() -> None:
    """Drop ``ix_<table>_0`` of the ranged tables (a database created after this change
    never had it: 0002 builds the tables from the current definitions)."""
    for table in _TABLES:
        op.drop_index(f"ix_{table}_0", table_name=table, if_exists=True)


def downgrade() -> None:
    """Create them again."""
    for table in _TABLES:
        op.create_index(f"ix_{table}_0", table, ["res_type", "res_id"])
