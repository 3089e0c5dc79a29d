"""The reads of a Bulk Data export, inside the access scope of the job's owner
(https://build.fhir.org/ig/HL7/bulk-data/export.html#response---complete-status).

``scan(store, scope)`` opens one connection for a whole export; every statement of the
``ExportScan`` it yields carries ``scope`` in its WHERE clause (``visibility.visible``
with the read interaction), so a job started with ``system/Observation.rs`` reads no
other type, and a ``patient/`` grant only the compartment of the scope's patient, however
wide the job's parameters are. Rows come through a server-side cursor (``yield_per``) in
index order, without a sort, and on SQLite the connection scans with a small page cache
(``engine.scan_cache``), so memory stays constant whatever the size of the export.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from fhir_service.errors import NotFound
from fhir_service.fhir.references import parse_reference
from fhir_service.storage.access import AccessScope
from fhir_service.storage.engine import BEGIN_OPTION, scan_cache
from fhir_service.storage.sql_repository import SqlRepository
from fhir_service.storage.store import SqlStore
from fhir_service.storage.tables import resource, resource_version
from fhir_service.storage.visibility import Where, inside

BATCH = 1000
READ = "r"
"""The interaction an export needs on what it writes (SMART ``read``)."""

Deleted = tuple[str, str, dict[str, Any] | None]
"""(type, id, body of the version before the delete) of a deleted resource."""


class ExportScan:
    """The export's reads on one connection, each inside ``scope``."""

    def __init__(self, conn: Connection, scope: AccessScope) -> None:
        self._conn = conn
        self.scope = scope

    def _inside(self) -> list[Where]:
        return inside(self.scope, READ)

    def group_members(self, group_id: str) -> list[str]:
        """Ids of the Patients in ``Group/group_id``; NotFound when there is no such Group
        or the scope does not reach it (https://hl7.org/fhir/R4/group.html)."""
        row = self._conn.execute(
            sa.select(resource_version.c.body)
            .join(resource, resource.c.seq == resource_version.c.seq)
            .where(
                resource.c.type == "Group",
                resource.c.id == group_id,
                resource.c.deleted.is_(False),
                *self._inside(),
            )
        ).first()
        if row is None:
            raise NotFound(f"Group/{group_id} is not known")
        members = []
        for member in row.body.get("member") or []:
            ref = (member.get("entity") or {}).get("reference")
            parsed = parse_reference(ref) if isinstance(ref, str) else None
            if parsed is not None and parsed.resource_type == "Patient":
                members.append(parsed.id)
        return members

    def types(self) -> list[str]:
        """The types of the current resources inside the scope, sorted (an export without
        ``_type``)."""
        rows = self._conn.execute(
            sa.select(resource.c.type)
            .where(resource.c.deleted.is_(False), *self._inside())
            .distinct()
        )
        return sorted(r.type for r in rows)

    def _matching(self, resource_type: str, queries: list[str]) -> Where:
        """``resource.seq`` of the resources matching any of the ``_typeFilter`` queries.
        The queries only filter: the scope applies to the rows they select, in ``rows``."""
        repo = SqlRepository(self._conn, scope=AccessScope.full())
        matches = [
            repo.search_query(resource_type, parse_qsl(q, keep_blank_values=True)).subquery()
            for q in queries
        ]
        return sa.or_(*(resource.c.seq.in_(sa.select(m.c.seq)) for m in matches))

    def rows(
        self,
        resource_type: str,
        *,
        since: datetime | None = None,
        type_filters: list[str] | None = None,
    ) -> Iterator[str]:
        """The JSON text of the current resources of a type inside the scope, in storage
        order: changed after ``since`` (``_since``), matching any of ``type_filters``
        (``_typeFilter`` queries) when given.

        Bodies are read as text and parsed one at a time by the caller: a driver that
        parses JSON itself (psycopg for JSONB) would hold a whole fetched batch as
        objects, which makes the garbage collector walk them again and again. The rows
        come in the order of the ``(type, seq)`` index of ``resource_version``, each joined
        to its ``resource`` row by primary key: ordered by ``resource.seq``, which no index
        orders, SQLite sorted every body of the type before giving the first one.
        """
        filters = [resource_version.c.type == resource_type, resource.c.deleted.is_(False)]
        if since is not None:
            filters.append(resource_version.c.last_updated > since)
        if type_filters:
            filters.append(self._matching(resource_type, type_filters))
        current = sa.and_(
            resource.c.type == resource_version.c.type,
            resource.c.id == resource_version.c.id,
            resource.c.seq == resource_version.c.seq,
        )
        query = (
            sa.select(sa.cast(resource_version.c.body, sa.Text).label("body"))
            .select_from(resource_version.join(resource, current))
            .where(*filters, *self._inside())
            .order_by(resource_version.c.seq)
        )
        for row in self._conn.execution_options(yield_per=BATCH).execute(query):
            yield row.body

    def deleted(self, since: datetime, types: list[str] | None = None) -> Iterator[Deleted]:
        """The resources deleted after ``since`` inside the scope (of ``types`` when
        given), for the manifest's ``deleted`` array
        (https://build.fhir.org/ig/HL7/bulk-data/export.html#bulk-data-output-file-request)."""
        marker = resource_version.alias("marker")
        last = resource_version.alias("last")
        query = (
            sa.select(resource.c.type, resource.c.id, last.c.body)
            .join(marker, resource.c.seq == marker.c.seq)
            .outerjoin(
                last,
                sa.and_(
                    last.c.type == resource.c.type,
                    last.c.id == resource.c.id,
                    last.c.version == resource.c.version - 1,
                ),
            )
            .where(resource.c.deleted.is_(True), marker.c.last_updated > since, *self._inside())
            .order_by(resource.c.seq)
        )
        if types is not None:
            query = query.where(resource.c.type.in_(types))
        for row in self._conn.execution_options(yield_per=BATCH).execute(query):
            yield row.type, row.id, row.body


@contextmanager
def scan(store: SqlStore, scope: AccessScope) -> Iterator[ExportScan]:
    """The reads of one export on one connection of ``store``, inside ``scope``."""
    if not isinstance(scope, AccessScope):
        raise TypeError("an export scan needs an AccessScope")
    with store.engine.connect().execution_options(**{BEGIN_OPTION: "DEFERRED"}) as conn:
        scan_cache(conn)
        yield ExportScan(conn, scope)
