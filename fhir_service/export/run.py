"""Running one export: stream the current resources into NDJSON files
(https://build.fhir.org/ig/HL7/bulk-data/export.html#response---complete-status).

The reads are storage's (``fhir_service.storage.export_scan``), inside the access scope
of the job's owner (``ExportParams.access_scope``: its recorded SMART scopes and
patient; everything when none were recorded, as for the command line), so a job never
writes what its owner could not read. Rows stream from the database straight to the
writer, so memory stays constant whatever the size of the export; a plain system-level
export writes the stored JSON text as it is, without parsing it. Patient and Group
exports keep the resources in the Patient compartment
(https://hl7.org/fhir/R4/compartmentdefinition-patient.html) of the selected patients.
With ``_since``, exports also list the resources deleted since then, as transaction
Bundles of DELETE entries (the manifest's ``deleted`` array); Patient and Group exports
list those whose last version was in a selected compartment.

``_typeFilter`` queries run through the storage search: a resource of a filtered type is
exported when it matches any of its type's queries. ``_elements`` keeps the named
top-level elements plus the mandatory ones and tags the resource SUBSETTED
(https://hl7.org/fhir/R4/search.html#elements).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from fhir_service.export.deidentify import Deidentifier
from fhir_service.export.ndjson import DEFAULT_MAX_BYTES, NdjsonWriter, OutputFile
from fhir_service.export.params import ExportParams
from fhir_service.fhir.summary import select_elements
from fhir_service.storage import SqlStore
from fhir_service.storage.export_scan import BATCH, ExportScan, scan

JSON = dict[str, Any]


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


def _types(reads: ExportScan, params: ExportParams, compartment: Compartment) -> list[str]:
    types = list(params.types) if params.types else reads.types()
    if params.level != "system":
        types = [t for t in types if compartment.covers(t)]
    return types


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
    store: SqlStore,
    params: ExportParams,
    directory: Path,
    *,
    compartment: Compartment,
    deidentifier: Deidentifier | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    on_progress: Callable[[int, str], bool] = lambda n, t: True,
) -> ExportResult:
    """Write the export of ``params`` into ``directory``, reading only what the scope
    of the job's owner reaches (``params.access_scope()``).

    ``on_progress(count, type)`` is called every 1000 resources; when it returns False the
    export stops with ``Cancelled``.
    """
    written = 0
    with scan(store, params.access_scope()) as reads:
        patients: set[str] | None = None
        if params.level == "group" and params.group:
            patients = set(reads.group_members(params.group))
        if params.patients is not None:
            chosen = set(params.patients)
            patients = chosen if patients is None else patients & chosen

        def selected(body: JSON | None) -> bool:
            if params.level == "system":
                return True
            members = compartment.patients(body) if body is not None else set()
            return bool(members) and (patients is None or bool(members & patients))

        types = _types(reads, params, compartment)
        with NdjsonWriter(directory, max_bytes=max_bytes) as writer:
            for resource_type in types:
                elements = _elements_of(resource_type, params.elements)
                as_stored = params.level == "system" and deidentifier is None and not elements
                queries = (params.type_filters or {}).get(resource_type)
                rows = reads.rows(resource_type, since=params.since, type_filters=queries)
                for text in rows:
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
                chosen_types = types if params.types else None
                for rtype, rid, last in reads.deleted(params.since, chosen_types):
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
