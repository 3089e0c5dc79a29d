"""Index the reference ``url`` column only where it holds a value: relative references
(most of them) keep no url, and an index entry for each of their NULLs cost every
indexed version a B-tree insert (and its page in the write-ahead log) and was never
read: a search by url compares ``url = ...``, which implies ``url IS NOT NULL``, so the
partial index serves it (https://www.sqlite.org/partialindex.html#queries_using_partial_indexes,
https://www.postgresql.org/docs/current/indexes-partial.html).

Revision ID: 0011_reference_url_partial
Revises: 0010_composite_choice
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_reference_url_partial"
down_revision = "0010_composite_choice"
branch_labels = None
depends_on = None

_NAME = "ix_sp_reference_3"
_COLUMNS = ["res_type", "param", "url"]


def upgrade() -> None:
    """Replace the full index by the partial one (a database created after this change
    already has it: 0002 builds the tables from the current definitions)."""
    op.drop_index(_NAME, table_name="sp_reference", if_exists=True)
    has_url = sa.text("url IS NOT NULL")
    op.create_index(_NAME, "sp_reference", _COLUMNS, sqlite_where=has_url, postgresql_where=has_url)


def downgrade() -> None:
    """The full index again."""
    op.drop_index(_NAME, table_name="sp_reference")
    op.create_index(_NAME, "sp_reference", _COLUMNS)
