"""Security and audit tables: registered clients, used client assertions, audit events.

Revision ID: 0004_security
Revises: 0003_sync
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_security"
down_revision = "0003_sync"
branch_labels = None
depends_on = None

_Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the security tables."""
    op.create_table(
        "auth_client",
        sa.Column("client_id", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("jwks", sa.Text, nullable=True),
        sa.Column("jwks_url", sa.String(2000), nullable=True),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("patient", sa.String(64), nullable=True),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "auth_assertion",
        sa.Column("client_id", sa.String(128), primary_key=True),
        sa.Column("jti", sa.String(255), primary_key=True),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_auth_assertion_expires", "auth_assertion", ["expires"])
    op.create_table(
        "audit_event",
        sa.Column("seq", _Seq, primary_key=True, autoincrement=True),
        sa.Column("recorded", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("patient", sa.String(64), nullable=True),
        sa.Column("source", sa.String(100), nullable=True),
        sa.Column("action", sa.String(1), nullable=False),
        sa.Column("subtype", sa.String(40), nullable=False),
        sa.Column("method", sa.String(10), nullable=False),
        sa.Column("path", sa.String(2000), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(2), nullable=False),
        sa.Column("entities", sa.Text, nullable=False),
    )
    op.create_index("ix_audit_event_recorded", "audit_event", ["recorded"])
    op.create_index("ix_audit_event_client", "audit_event", ["client_id", "recorded"])


def downgrade() -> None:
    """Drop the security tables."""
    op.drop_index("ix_audit_event_client", table_name="audit_event")
    op.drop_index("ix_audit_event_recorded", table_name="audit_event")
    op.drop_table("audit_event")
    op.drop_index("ix_auth_assertion_expires", table_name="auth_assertion")
    op.drop_table("auth_assertion")
    op.drop_table("auth_client")
