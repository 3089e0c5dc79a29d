"""Security and audit tables (filled in by the security work; a no-op until then).

Revision ID: 0004_security
Revises: 0003_sync
Create Date: 2026-11-27
"""

from __future__ import annotations

revision = "0004_security"
down_revision = "0003_sync"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the security tables."""


def downgrade() -> None:
    """Drop the security tables."""
