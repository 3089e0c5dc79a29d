"""The current resources of one type, streamed for view runs
(https://sql-on-fhir.org/ig/latest/OperationDefinition-ViewDefinitionRun.html).

Pages of ``resource`` joined to the current ``resource_version`` in id order (keyset
pagination on the primary key), so resources reach the view runner a page at a time and
memory does not grow with the table. The caller's ``AccessScope`` is applied inside
the SQL (search access: a type it may search, only its compartment's resources for a
patient scope); ``patient`` further keeps the resources in that patient's compartment
(https://hl7.org/fhir/R4/compartmentdefinition-patient.html).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa

from fhir_service.fhir.models import model_class
from fhir_service.storage.repository import Repository
from fhir_service.storage.sql_repository import SqlRepository
from fhir_service.storage.tables import resource, resource_version, version_patient
from fhir_service.storage.visibility import visible_resources

BATCH = 500


def _filtered(
    stmt: sa.Select[Any], repo: SqlRepository, patient: str | None, since: datetime | None
) -> sa.Select[Any]:
    stmt = stmt.select_from(
        resource.join(resource_version, resource_version.c.seq == resource.c.seq)
    ).where(resource.c.deleted.is_(False))
    if since is not None:
        stmt = stmt.where(resource_version.c.last_updated > since)
    where = visible_resources(repo.scope, "s")
    if where is not None:
        stmt = stmt.where(where)
    if patient is not None:
        stmt = stmt.where(
            resource.c.seq.in_(
                sa.select(version_patient.c.seq).where(version_patient.c.patient_id == patient)
            )
        )
    return stmt


def current_resources(
    repo: SqlRepository, resource_type: str, patient: str | None, since: datetime | None
) -> sa.Select[Any]:
    """``(id, body)`` of the current ``resource_type`` resources the unit's scope may
    search (``patient``: in that compartment; ``since``: changed after), unordered."""
    stmt = sa.select(resource.c.id, resource_version.c.body).where(resource.c.type == resource_type)
    return _filtered(stmt, repo, patient, since)


def _statement(
    repo: SqlRepository,
    resource_type: str,
    patient: str | None,
    since: datetime | None,
    after: str | None,
    batch: int,
) -> sa.Select[Any]:
    stmt = (
        sa.select(resource.c.id, sa.cast(resource_version.c.body, sa.Text).label("body"))
        .where(resource.c.type == resource_type)
        .order_by(resource.c.id)
        .limit(batch)
    )
    if after is not None:
        stmt = stmt.where(resource.c.id > after)
    return _filtered(stmt, repo, patient, since)


def scan_resources(
    repo: Repository,
    resource_type: str,
    *,
    patient: str | None = None,
    since: datetime | None = None,
    batch: int = BATCH,
) -> Iterator[dict[str, Any]]:
    """Every current ``resource_type`` resource the unit's scope may search, in id order,
    read ``batch`` at a time (keyset pages on the primary key, so a readonly autocommit
    unit streams too); Forbidden when the scope does not cover searching the type. ``since``: only
    resources whose current version is newer."""
    if not isinstance(repo, SqlRepository):
        raise TypeError("scan_resources needs a SqlRepository unit of work")
    model_class(resource_type)
    repo.require(resource_type, "s")
    after: str | None = None
    while True:
        rows = repo.connection.execute(
            _statement(repo, resource_type, patient, since, after, batch)
        ).all()
        for row in rows:
            yield orjson.loads(row.body)
        if len(rows) < batch:
            return
        after = rows[-1].id
