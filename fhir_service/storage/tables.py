"""The SQL schema of the resource store (SQLAlchemy Core, shared by SQLite and PostgreSQL).

- ``resource_version``: every version of every resource, delete markers included
  (https://hl7.org/fhir/R4/http.html#history); the body is JSONB on PostgreSQL and
  JSON text on SQLite, stored once.
- ``resource``: one row per (type, id) pointing at its current version.
- the search index tables are in ``search_tables.py``.
- ``version_patient``: one row per (patient, version) for each version in that patient's
  compartment (https://hl7.org/fhir/R4/compartmentdefinition-patient.html); a delete
  marker keeps the rows of the content it deleted. Patient scopes read through it.
- ``conditional_claim``: one row per (type, SHA-256 of the normalized If-None-Exist
  criteria) naming the resource that criteria created; its
  primary key makes concurrent conditional creates produce one resource.

The alembic migrations in ``migrations/versions`` create exactly these tables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect

metadata = sa.MetaData()


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both databases (SQLite keeps naive UTC text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


def as_utc(value: datetime | str) -> datetime:
    """A stored timestamp (SQLite: naive UTC text; PostgreSQL: aware) as an aware UTC
    datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


_Body = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
_Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

resource_version = sa.Table(
    "resource_version",
    metadata,
    sa.Column("seq", _Seq, primary_key=True, autoincrement=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("id", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("last_updated", UtcDateTime(), nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False),
    sa.Column("method", sa.String(8), nullable=False),
    sa.Column("body", _Body, nullable=True),
    sa.UniqueConstraint("type", "id", "version", name="uq_resource_version"),
    sa.Index("ix_resource_version_type_seq", "type", "seq"),
    sa.Index("ix_resource_version_last_updated", "last_updated"),
)

resource = sa.Table(
    "resource",
    metadata,
    sa.Column("type", sa.String(64), primary_key=True),
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False),
    sa.Column("seq", _Seq, nullable=False),
)

conditional_claim = sa.Table(
    "conditional_claim",
    metadata,
    sa.Column("type", sa.String(64), primary_key=True),
    sa.Column("criteria_hash", sa.String(64), primary_key=True),
    sa.Column("id", sa.String(64), nullable=False),
)

version_patient = sa.Table(
    "version_patient",
    metadata,
    sa.Column("patient_id", sa.String(64), primary_key=True),
    sa.Column("seq", _Seq, primary_key=True),
    sa.Index("ix_version_patient_seq", "seq"),
)
