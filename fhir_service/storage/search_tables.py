"""The search index tables, one per SearchParameter type (https://hl7.org/fhir/R4/search.html#ptypes).

Every table has ``res_type``, ``res_id`` and ``param`` (the parameter code) and
the columns of its type (see ``fhir_service.search.extract``). Rows are written
with each version in the same database transaction and replaced on update and
delete. Ranged tables (date, number, quantity) are indexed by resource: their
criteria are probed per candidate found through the equality criteria. Text
compared by prefix uses the "C" collation on PostgreSQL so that range
comparisons follow code points, as on SQLite.
"""

from __future__ import annotations

import sqlalchemy as sa

from fhir_service.storage.tables import UtcDateTime

search_metadata = sa.MetaData()

_Key = sa.String(64)
_Text = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def _table(name: str, *columns: sa.Column[object], indexes: list[list[str]]) -> sa.Table:
    table = sa.Table(
        name,
        search_metadata,
        sa.Column("res_type", _Key, nullable=False),
        sa.Column("res_id", _Key, nullable=False),
        sa.Column("param", sa.String(100), nullable=False),
        *columns,
    )
    for i, cols in enumerate([["res_type", "res_id"], *indexes]):
        if i == 0 and any(more[:2] == cols for more in indexes):
            continue  # another index starts with (res_type, res_id) and serves its lookups
        sa.Index(f"ix_{name}_{i}", *[table.c[c] for c in cols])
    return table


sp_string = _table(
    "sp_string",
    sa.Column("value_norm", _Text, nullable=False),
    sa.Column("value_exact", _Text, nullable=False),
    indexes=[["res_type", "param", "value_norm", "res_id"]],
)
sp_token = _table(
    "sp_token",
    sa.Column("system", _Text, nullable=True),
    sa.Column("code", _Text, nullable=True),
    sa.Column("text_norm", _Text, nullable=True),
    indexes=[["res_type", "param", "code", "res_id", "system"]],
)
sp_reference = _table(
    "sp_reference",
    sa.Column("target_type", _Key, nullable=True),
    sa.Column("target_id", _Key, nullable=True),
    sa.Column("url", _Text, nullable=True),
    indexes=[
        ["res_type", "param", "target_id", "res_id", "target_type"],
        ["target_id", "target_type", "res_type"],
    ],
)
_has_url = sp_reference.c.url.is_not(None)
sa.Index(
    "ix_sp_reference_3",
    sp_reference.c.res_type,
    sp_reference.c.param,
    sp_reference.c.url,
    sqlite_where=_has_url,
    postgresql_where=_has_url,
)
"""Absolute and canonical references (``url``) only: most references are relative and
keep no url, and an index of their NULLs only cost writes (migration ``0011``)."""
sp_date = _table(
    "sp_date",
    sa.Column("low", UtcDateTime(), nullable=False),
    sa.Column("high", UtcDateTime(), nullable=False),
    indexes=[["res_type", "res_id", "param", "low", "high"]],
)
sp_number = _table(
    "sp_number",
    sa.Column("value", sa.Float, nullable=False),
    indexes=[["res_type", "res_id", "param", "value"]],
)
sp_quantity = _table(
    "sp_quantity",
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("system", _Text, nullable=True),
    sa.Column("code", _Text, nullable=True),
    sa.Column("canon_value", sa.Float, nullable=True),
    sa.Column("canon_code", _Text, nullable=True),
    indexes=[["res_type", "res_id", "param", "value"]],
)
sp_uri = _table(
    "sp_uri",
    sa.Column("value", _Text, nullable=False),
    indexes=[["res_type", "param", "value", "res_id"]],
)

sp_composite = _table(
    "sp_composite",
    sa.Column("a_system", _Text, nullable=True),
    sa.Column("a_code", _Text, nullable=False),
    sa.Column("b_system", _Text, nullable=True),
    sa.Column("b_code", _Text, nullable=True),
    sa.Column("b_value", sa.Float, nullable=True),
    sa.Column("b_canon", sa.Float, nullable=True),
    sa.Column("b_canon_code", _Text, nullable=True),
    sa.Column("b_low", UtcDateTime(), nullable=True),
    sa.Column("b_high", UtcDateTime(), nullable=True),
    sa.Column("b_text", _Text, nullable=True),
    indexes=[["res_type", "param", "a_code", "res_id"]],
)

composite_part_metadata = sa.MetaData()
sp_composite_part = sa.Table(
    "sp_composite_part",
    composite_part_metadata,
    sa.Column("res_type", _Key, nullable=False),
    sa.Column("res_id", _Key, nullable=False),
    sa.Column("param", sa.String(100), nullable=False),
    sa.Column("row_no", sa.Integer, nullable=False),
    sa.Column("part", sa.Integer, nullable=False),
    sa.Column("system", _Text, nullable=True),
    sa.Column("code", _Text, nullable=True),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("canon", sa.Float, nullable=True),
    sa.Column("canon_code", _Text, nullable=True),
    sa.Column("low", UtcDateTime(), nullable=True),
    sa.Column("high", UtcDateTime(), nullable=True),
    sa.Column("text", _Text, nullable=True),
    sa.Index("ix_sp_composite_part_0", "res_type", "res_id", "param", "row_no", "part"),
    sa.Index("ix_sp_composite_part_1", "res_type", "param", "part", "code", "res_id"),
)
"""Composites other than the (token|reference, token|quantity|date|string) pairs, e.g.
three components: one row per component (``part`` 0..n-1) of each combination
(``row_no``), created by migration ``0006_reindex``."""

SEARCH_TABLES: dict[str, sa.Table] = {
    "string": sp_string,
    "token": sp_token,
    "reference": sp_reference,
    "date": sp_date,
    "number": sp_number,
    "quantity": sp_quantity,
    "uri": sp_uri,
    "composite": sp_composite,
    "composite_part": sp_composite_part,
}
"""The index table of each parameter type."""

ROW_COLUMNS: dict[str, tuple[str, ...]] = {
    "string": ("param", "value_norm", "value_exact"),
    "token": ("param", "system", "code", "text_norm"),
    "reference": ("param", "target_type", "target_id", "url"),
    "date": ("param", "low", "high"),
    "number": ("param", "value"),
    "quantity": ("param", "value", "system", "code", "canon_value", "canon_code"),
    "uri": ("param", "value"),
    "composite": (
        "param",
        "a_system",
        "a_code",
        "b_system",
        "b_code",
        "b_value",
        "b_canon",
        "b_canon_code",
        "b_low",
        "b_high",
        "b_text",
    ),
    "composite_part": (
        "param",
        "row_no",
        "part",
        "system",
        "code",
        "value",
        "canon",
        "canon_code",
        "low",
        "high",
        "text",
    ),
}
"""Column names of the tuples ``fhir_service.search.extract`` yields."""
