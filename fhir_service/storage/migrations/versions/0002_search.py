"""Search index tables (filled in by the search work; a no-op until then).

Revision ID: 0002_search
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

revision = "0002_search"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the search tables."""


def downgrade() -> None:
    """Drop the search tables."""
