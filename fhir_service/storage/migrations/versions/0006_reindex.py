"""Background reindex jobs (https://hl7.org/fhir/R4/searchparameter.html) and the index
table of composites with three or more components (https://hl7.org/fhir/R4/search.html#composite).

Revision ID: 0006_reindex
Revises: 0005_export
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_reindex"
down_revision = "0005_export"
branch_labels = None
depends_on = None


_Text = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def upgrade() -> None:
    """Create ``reindex_job`` and ``sp_composite_part``."""
    op.create_table(
        "reindex_job",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(300), nullable=False),
        sa.Column("trigger", sa.String(200), nullable=True, unique=True),
        sa.Column("types", sa.Text, nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished", sa.DateTime(timezone=True), nullable=True),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("done", sa.Integer, nullable=False),
        sa.Column("cursor_type", sa.String(64), nullable=True),
        sa.Column("cursor_id", sa.String(64), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_reindex_job_status", "reindex_job", ["status", "created"])
    op.create_table(
        "sp_composite_part",
        sa.Column("res_type", sa.String(64), nullable=False),
        sa.Column("res_id", sa.String(64), nullable=False),
        sa.Column("param", sa.String(100), nullable=False),
        sa.Column("row_no", sa.Integer, nullable=False),
        sa.Column("part", sa.Integer, nullable=False),
        sa.Column("system", _Text, nullable=True),
        sa.Column("code", _Text, nullable=True),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("canon", sa.Float, nullable=True),
        sa.Column("canon_code", _Text, nullable=True),
        sa.Column("low", sa.DateTime(timezone=True), nullable=True),
        sa.Column("high", sa.DateTime(timezone=True), nullable=True),
        sa.Column("text", _Text, nullable=True),
    )
    op.create_index(
        "ix_sp_composite_part_0",
        "sp_composite_part",
        ["res_type", "res_id", "param", "row_no", "part"],
    )
    op.create_index(
        "ix_sp_composite_part_1",
        "sp_composite_part",
        ["res_type", "param", "part", "code", "res_id"],
    )


def downgrade() -> None:
    """Drop ``sp_composite_part`` and ``reindex_job``."""
    op.drop_index("ix_sp_composite_part_1", table_name="sp_composite_part")
    op.drop_index("ix_sp_composite_part_0", table_name="sp_composite_part")
    op.drop_table("sp_composite_part")
    op.drop_index("ix_reindex_job_status", table_name="reindex_job")
    op.drop_table("reindex_job")
