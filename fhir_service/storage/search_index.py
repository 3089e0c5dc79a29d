"""Writing the search index with each version, in the caller's transaction
(https://hl7.org/fhir/R4/search.html).

``index_resources`` inserts the rows of new versions; ``drop_index`` removes
the rows of a resource before its next version (or delete marker) is written;
``reindex_batch`` rewrites the rows of existing resources (``fhir-service search
reindex``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from fhir_service.fhir.packages import PackageError
from fhir_service.search.extract import extract
from fhir_service.search.registry import Registry, get_registry
from fhir_service.storage.bulk_insert import insert_many
from fhir_service.storage.search_tables import ROW_COLUMNS, SEARCH_TABLES
from fhir_service.storage.tables import resource, resource_version

log = logging.getLogger(__name__)


def registry_or_none() -> Registry | None:
    """The core registry, or None (logged) when the core package is not installed."""
    try:
        return get_registry()
    except PackageError as exc:
        log.warning("search index not written: %s", exc)
        return None


def registry_for(conn: Connection, core: Registry) -> Registry:
    """``core`` plus the active SearchParameters stored in this database, as this
    transaction sees them (https://hl7.org/fhir/R4/searchparameter.html).

    One aggregate over the SearchParameter rows (an index range) gives their state
    (database, last sequence number, count, last update); the extended registry is
    compiled once per state.
    """
    state = conn.execute(
        sa.select(
            sa.func.max(resource.c.seq),
            sa.func.count(),
            sa.func.max(resource_version.c.last_updated),
        )
        .select_from(resource.join(resource_version, resource.c.seq == resource_version.c.seq))
        .where(resource.c.type == "SearchParameter")
    ).one()
    if not state[1]:
        return core
    key = (conn.engine.url.render_as_string(hide_password=True), *state)
    cached = core.cached_extension(key)
    if cached is not None:
        return cached
    bodies = [
        body
        for body in conn.execute(
            sa.select(resource_version.c.body)
            .join(resource, resource.c.seq == resource_version.c.seq)
            .where(resource.c.type == "SearchParameter", resource.c.deleted.is_(False))
        ).scalars()
        if body is not None
    ]
    return core.extended(key, bodies)


def index_resources(
    conn: Connection,
    items: Iterable[tuple[str, str, dict[str, Any]]],
    registry: Registry | None = None,
) -> None:
    """Insert the index rows of (type, id, body) items, one INSERT per table; ``registry``
    is the caller's ``registry_for`` (looked up here when not given)."""
    if registry is None:
        core = registry_or_none()
        if core is None:
            return
        registry = registry_for(conn, core)
    batches: dict[str, list[tuple[Any, ...]]] = {kind: [] for kind in SEARCH_TABLES}
    for resource_type, id, body in items:
        for kind, rows in extract(registry, body).items():
            batches[kind].extend((resource_type, id, *row) for row in rows)
    for kind, batch in batches.items():
        columns = ("res_type", "res_id", *ROW_COLUMNS[kind])
        insert_many(conn, SEARCH_TABLES[kind], columns, batch)


def drop_index(conn: Connection, resource_type: str, id: str) -> None:
    """Delete every index row of one resource."""
    for table in SEARCH_TABLES.values():
        conn.execute(
            sa.delete(table).where(table.c.res_type == resource_type, table.c.res_id == id)
        )


def reindex_batch(conn: Connection, resource_type: str, after_id: str, limit: int) -> list[str]:
    """Rewrite the index rows of up to ``limit`` current resources of a type whose id sorts
    after ``after_id``; returns their ids (empty when done).

    Runs in the caller's transaction; on PostgreSQL the resource rows are locked so a
    concurrent update cannot interleave with the rewrite of its rows.
    """
    query = (
        sa.select(resource.c.id, resource.c.deleted, resource.c.seq)
        .where(resource.c.type == resource_type, resource.c.id > after_id)
        .order_by(resource.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    rows = list(conn.execute(query))
    if not rows:
        return []
    ids = [r.id for r in rows]
    for table in SEARCH_TABLES.values():
        conn.execute(
            sa.delete(table).where(table.c.res_type == resource_type, table.c.res_id.in_(ids))
        )
    live = [r.seq for r in rows if not r.deleted]
    bodies = conn.execute(
        sa.select(resource_version.c.id, resource_version.c.body).where(
            resource_version.c.seq.in_(live)
        )
    )
    index_resources(conn, [(resource_type, row.id, row.body) for row in bodies])
    return ids


def analyze(conn: Connection) -> None:
    """Refresh the planner statistics (ANALYZE), advisable after bulk loads and reindexing."""
    conn.exec_driver_sql("ANALYZE")
