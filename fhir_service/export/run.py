"""Running one export: stream the current resources into NDJSON files
(https://hl7.org/fhir/uv/bulkdata/STU2/export.html#response---complete-status).

Rows come from the database through a server-side cursor (``yield_per``) and go straight
to the writer, so memory stays constant whatever the size of the export. Patient and
Group exports keep the resources in the Patient compartment
(https://hl7.org/fhir/R4/compartmentdefinition-patient.html) of the selected patients.
With ``_since``, system exports also list the resources deleted since then, as
transaction Bundles of DELETE entries (the manifest's ``deleted`` array).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from fhir_service.errors import NotFound
from fhir_service.export.deidentify import Deidentifier
from fhir_service.export.jobs import ExportParams
from fhir_service.export.ndjson import DEFAULT_MAX_BYTES, NdjsonWriter, OutputFile
from fhir_service.fhir.references import parse_reference
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


def _rows(conn: Connection, resource_type: str, params: ExportParams) -> Iterator[JSON]:
    filters = [resource.c.type == resource_type, resource.c.deleted.is_(False)]
    if params.since is not None:
        filters.append(resource_version.c.last_updated > params.since)
    query = (
        sa.select(resource_version.c.body)
        .join(resource, resource.c.seq == resource_version.c.seq)
        .where(*filters)
        .order_by(resource.c.seq)
    )
    for row in conn.execution_options(yield_per=BATCH).execute(query):
        yield row.body


def _deleted(conn: Connection, types: list[str], params: ExportParams) -> Iterator[tuple[str, str]]:
    assert params.since is not None
    query = (
        sa.select(resource.c.type, resource.c.id)
        .join(resource_version, resource.c.seq == resource_version.c.seq)
        .where(resource.c.deleted.is_(True), resource_version.c.last_updated > params.since)
        .order_by(resource.c.seq)
    )
    if params.types:
        query = query.where(resource.c.type.in_(types))
    for row in conn.execution_options(yield_per=BATCH).execute(query):
        yield row.type, row.id


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
        types = _types(conn, params, compartment)
        with NdjsonWriter(directory, max_bytes=max_bytes) as writer:
            for resource_type in types:
                for body in _rows(conn, resource_type, params):
                    if params.level != "system":
                        members = compartment.patients(body)
                        if not members or (patients is not None and not members & patients):
                            continue
                    if deidentifier is not None:
                        body = deidentifier.apply(body)
                    writer.write(resource_type, body)
                    written += 1
                    if written % BATCH == 0 and not on_progress(written, resource_type):
                        raise Cancelled()
            output = writer.close()
        deleted: list[OutputFile] = []
        if params.since is not None and params.level == "system":
            with NdjsonWriter(directory, max_bytes=max_bytes, prefix="deleted-") as writer:
                for rtype, rid in _deleted(conn, types, params):
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
