"""Resource store: versions, current pointers, conditional-create claims.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_Body = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
_Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "resource_version",
        sa.Column("seq", _Seq, primary_key=True, autoincrement=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("body", _Body, nullable=True),
        sa.UniqueConstraint("type", "id", "version", name="uq_resource_version"),
    )
    op.create_index("ix_resource_version_type_seq", "resource_version", ["type", "seq"])
    op.create_index("ix_resource_version_last_updated", "resource_version", ["last_updated"])
    op.create_table(
        "resource",
        sa.Column("type", sa.String(64), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("seq", _Seq, nullable=False),
    )
    op.create_table(
        "conditional_claim",
        sa.Column("type", sa.String(64), primary_key=True),
        sa.Column("criteria_hash", sa.String(64), primary_key=True),
        sa.Column("id", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("conditional_claim")
    op.drop_table("resource")
    op.drop_table("resource_version")
