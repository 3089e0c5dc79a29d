"""Running one export: stream the current resources into NDJSON files
(https://hl7.org/fhir/uv/bulkdata/STU2/export.html#response---complete-status).

Rows come from the database through a server-side cursor (``yield_per``) and go straight
to the writer, so memory stays constant whatever the size of the export; a plain
system-level export writes the stored JSON text as it is, without parsing it. Patient and
Group exports keep the resources in the Patient compartment
(https://hl7.org/fhir/R4/compartmentdefinition-patient.html) of the selected patients.
With ``_since``, exports also list the resources deleted since then, as transaction
Bundles of DELETE entries (the manifest's ``deleted`` array); Patient and Group exports
list those whose last version was in a selected compartment.

``_typeFilter`` queries run through the storage search (``SqlRepository.search_query``):
a resource of a filtered type is exported when it matches any of its type's queries.
``_elements`` keeps the named top-level elements plus the mandatory ones and tags the
resource SUBSETTED (https://hl7.org/fhir/R4/search.html#elements).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from fhir_service.errors import NotFound
from fhir_service.export.deidentify import Deidentifier
from fhir_service.export.jobs import ExportParams
from fhir_service.export.ndjson import DEFAULT_MAX_BYTES, NdjsonWriter, OutputFile
from fhir_service.fhir.references import parse_reference
from fhir_service.fhir.summary import select_elements
from fhir_service.storage import SqlRepository
from fhir_service.storage.access import AccessScope
from fhir_service.storage.engine import BEGIN_OPTION
from fhir_service.storage.tables import resource, resource_version

JSON = dict[str, Any]
BATCH = 1000


class Compartment(Protocol):
    """Patient compartment membership (as given by the service's compartment definition)."""

    def covers(self, resource_type: str) -> bool: ...

    def patients(self, resource: JSON) -> set[str]: ...


class Cancelled(Exception):
    """The job was cancelled while it ran."""


@dataclass(frozen=True)
class ExportResult:
    output: list[OutputFile]
    deleted: list[OutputFile]


def _group_members(conn: Connection, group_id: str) -> list[str]:
    row = conn.execute(
        sa.select(resource_version.c.body)
        .join(resource, resource.c.seq == resource_version.c.seq)
        .where(resource.c.type == "Group", resource.c.id == group_id, resource.c.deleted.is_(False))
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


def group_members(engine: Engine, group_id: str) -> list[str]:
    """Ids of the Patients in ``Group/group_id``; NotFound when there is no such Group."""
    with engine.connect().execution_options(**{BEGIN_OPTION: "DEFERRED"}) as conn:
        return _group_members(conn, group_id)


def _types(conn: Connection, params: ExportParams, compartment: Compartment) -> list[str]:
    if params.types:
        types = list(params.types)
    else:
        rows = conn.execute(
            sa.select(resource.c.type).where(resource.c.deleted.is_(False)).distinct()
        )
        types = sorted(r.type for r in rows)
    if params.level != "system":
        types = [t for t in types if compartment.covers(t)]
    return types


def _matching(conn: Connection, resource_type: str, queries: list[str]) -> Any:
    """``resource.seq`` of the resources matching any of the ``_typeFilter`` queries."""
    repo = SqlRepository(conn, scope=AccessScope.full())
    matches = [
        repo.search_query(resource_type, parse_qsl(q, keep_blank_values=True)).subquery()
        for q in queries
    ]
    return sa.or_(*(resource.c.seq.in_(sa.select(m.c.seq)) for m in matches))


def _rows(conn: Connection, resource_type: str, params: ExportParams) -> Iterator[str]:
    """The JSON text of the current resources of a type, in storage order.

    Bodies are read as text and parsed one at a time by the caller: a driver that parses
    JSON itself (psycopg for JSONB) would hold a whole fetched batch as objects, which
    makes the garbage collector walk them again and again.
    """
    filters = [resource.c.type == resource_type, resource.c.deleted.is_(False)]
    if params.since is not None:
        filters.append(resource_version.c.last_updated > params.since)
    queries = (params.type_filters or {}).get(resource_type)
    if queries:
        filters.append(_matching(conn, resource_type, queries))
    query = (
        sa.select(sa.cast(resource_version.c.body, sa.Text).label("body"))
        .join(resource, resource.c.seq == resource_version.c.seq)
        .where(*filters)
        .order_by(resource.c.seq)
    )
    for row in conn.execution_options(yield_per=BATCH).execute(query):
        yield row.body


def _deleted(conn: Connection, types: list[str], params: ExportParams) -> Iterator[Any]:
    """(type, id, body of the version before the delete) of resources deleted since."""
    assert params.since is not None
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
        .where(resource.c.deleted.is_(True), marker.c.last_updated > params.since)
        .order_by(resource.c.seq)
    )
    if params.types:
        query = query.where(resource.c.type.in_(types))
    yield from conn.execution_options(yield_per=BATCH).execute(query)


def _elements_of(resource_type: str, elements: list[str] | None) -> list[str]:
    """The ``_elements`` names that apply to ``resource_type`` (``Type.name`` or ``name``)."""
    names = []
    for item in elements or []:
        head, dot, name = item.partition(".")
        if not dot:
            names.append(item)
        elif head == resource_type:
            names.append(name)
    return names


def run_export(
    engine: Engine,
    params: ExportParams,
    directory: Path,
    *,
    compartment: Compartment,
    deidentifier: Deidentifier | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    on_progress: Callable[[int, str], bool] = lambda n, t: True,
) -> ExportResult:
    """Write the export of ``params`` into ``directory``.

    ``on_progress(count, type)`` is called every 1000 resources; when it returns False the
    export stops with ``Cancelled``.
    """
    written = 0
    with engine.connect().execution_options(**{BEGIN_OPTION: "DEFERRED"}) as conn:
        patients: set[str] | None = None
        if params.level == "group" and params.group:
            patients = set(_group_members(conn, params.group))
        if params.patients is not None:
            chosen = set(params.patients)
            patients = chosen if patients is None else patients & chosen

        def selected(body: JSON | None) -> bool:
            if params.level == "system":
                return True
            members = compartment.patients(body) if body is not None else set()
            return bool(members) and (patients is None or bool(members & patients))

        types = _types(conn, params, compartment)
        with NdjsonWriter(directory, max_bytes=max_bytes) as writer:
            for resource_type in types:
                elements = _elements_of(resource_type, params.elements)
                as_stored = params.level == "system" and deidentifier is None and not elements
                for text in _rows(conn, resource_type, params):
                    if as_stored and "\n" not in text:
                        writer.write_json(resource_type, text.encode("utf-8"))
                    else:
                        body = orjson.loads(text)
                        if not selected(body):
                            continue
                        if deidentifier is not None:
                            body = deidentifier.apply(body)
                        if elements:
                            body = select_elements(body, elements)
                        writer.write(resource_type, body)
                    written += 1
                    if written % BATCH == 0 and not on_progress(written, resource_type):
                        raise Cancelled()
            output = writer.close()
        deleted: list[OutputFile] = []
        if params.since is not None:
            with NdjsonWriter(directory, max_bytes=max_bytes, prefix="deleted-") as writer:
                for rtype, rid, last in _deleted(conn, types, params):
                    if params.level != "system" and (
                        not compartment.covers(rtype) or not selected(last)
                    ):
                        continue
                    if deidentifier is not None:
                        rid = deidentifier.pseudonym(rtype, rid)
                    entry = {"request": {"method": "DELETE", "url": f"{rtype}/{rid}"}}
                    writer.write(
                        "Bundle",
                        {"resourceType": "Bundle", "type": "transaction", "entry": [entry]},
                    )
                deleted = writer.close()
    on_progress(written, "")
    return ExportResult(output, deleted)
