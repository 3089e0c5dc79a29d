"""Search index tables: one per SearchParameter type (https://hl7.org/fhir/R4/search.html).

Revision ID: 0002_search
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

from fhir_service.storage.search_tables import search_metadata

revision = "0002_search"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the search tables and their indexes."""
    search_metadata.create_all(op.get_bind())


def downgrade() -> None:
    """Drop the search tables."""
    search_metadata.drop_all(op.get_bind())
