"""The kick-off parameters of Bulk Data ``$export``
(https://hl7.org/fhir/uv/bulkdata/STU2/export.html#query-parameters), from the query
string (GET) or a ``Parameters`` body (POST), checked into an ``ExportParams``.

Every client mistake is an InvalidRequest (400 OperationOutcome) at kick-off, so a job
never starts on parameters it cannot run.

The kick-off's access check (``fhir_service.api.auth.export_scopes``) and the job see the
one ``ExportParams`` built here, query string and body together.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request

from fhir_service.api.body import json_object, parse_json, read_body
from fhir_service.api.routes.metadata import resource_types
from fhir_service.errors import InvalidRequest
from fhir_service.export.deid_rules import rules_from_text
from fhir_service.export.params import ExportParams, Level
from fhir_service.fhir.models import is_resource_type
from fhir_service.fhir.references import parse_reference
from fhir_service.fhir.summary import unknown_elements
from fhir_service.search.query import RESULT_PARAMS
from fhir_service.storage import Store

NDJSON_FORMATS = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
NOT_CRITERIA = RESULT_PARAMS | {"_format", "_pretty"}


def _since(value: str) -> datetime:
    try:
        since = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(
            f"_since '{value[:40]}' is not a FHIR instant", expression="_since"
        ) from None
    if since.tzinfo is None:
        raise InvalidRequest("_since needs a timezone", expression="_since")
    return since


def _types(value: str) -> list[str]:
    types = [t.strip() for t in value.split(",") if t.strip()]
    for name in types:
        if not is_resource_type(name):
            raise InvalidRequest(f"_type: unknown resource type '{name[:64]}'", expression="_type")
    return types


_NEXT_QUERY = re.compile(r",([A-Z][A-Za-z]*)\?")
"""A comma and ``Name?``: where the next ``Type?query`` of a ``_typeFilter`` may start."""


def _type_filters(value: str) -> list[tuple[str, str]]:
    """A ``_typeFilter`` value is a comma-delimited list of ``Type?query``
    (https://hl7.org/fhir/uv/bulkdata/STU2/export.html#_typefilter-experimental-query-parameter).
    A comma followed by ``ResourceType?`` starts the next query; any other comma belongs
    to the query (a search OR, ``status=final,amended``)."""
    starts = [m.start() for m in _NEXT_QUERY.finditer(value) if is_resource_type(m.group(1))]
    bounds = zip([-1, *starts], [*starts, len(value)], strict=True)
    return [_type_filter(value[begin + 1 : end]) for begin, end in bounds]


def _type_filter(value: str) -> tuple[str, str]:
    """``Type?query`` -> (Type, query); the query holds search criteria only."""
    rtype, mark, query = value.partition("?")
    if not mark or not is_resource_type(rtype):
        raise InvalidRequest(
            f"_typeFilter '{value[:80]}' is not ResourceType?search-query",
            expression="_typeFilter",
        )
    pairs = parse_qsl(query, keep_blank_values=True)
    if not pairs:
        raise InvalidRequest(f"_typeFilter '{value[:80]}' has no query", expression="_typeFilter")
    for name, _ in pairs:
        if name.split(":")[0] in NOT_CRITERIA:
            raise InvalidRequest(
                f"_typeFilter takes search criteria only, not '{name[:40]}'",
                expression="_typeFilter",
            )
    return rtype, query


def _elements(value: str) -> list[str]:
    """``Type.element`` or ``element`` names, root elements only."""
    items = [e.strip() for e in value.split(",") if e.strip()]
    if not items:
        raise InvalidRequest("_elements is empty", expression="_elements")
    for item in items:
        head, dot, name = item.partition(".")
        if dot and (not is_resource_type(head) or "." in name or unknown_elements(head, [name])):
            raise InvalidRequest(
                f"_elements: '{item[:80]}' is not Type.element with a root element of Type",
                expression="_elements",
            )
    return items


def _check_unprefixed(elements: list[str], types: list[str] | None) -> None:
    """Each ``element`` without a type must be an element of some exported type."""
    candidates = types or list(resource_types())
    for item in elements:
        if "." not in item and all(unknown_elements(t, [item]) for t in candidates):
            raise InvalidRequest(
                f"_elements: '{item[:80]}' is no root element of the exported types",
                expression="_elements",
            )


async def parameter_pairs(request: Request) -> list[tuple[str, Any]]:
    """(name, value) pairs from the query string (GET) or a Parameters body (POST)."""
    pairs: list[tuple[str, Any]] = list(request.query_params.multi_items())
    if request.method != "POST":
        return pairs
    raw = await read_body(request, request.app.state.settings.max_body_bytes)
    if not raw.strip():
        return pairs
    body = json_object(parse_json(raw))
    if body.get("resourceType") != "Parameters":
        raise InvalidRequest("The $export POST body must be a Parameters resource")
    for parameter in body.get("parameter") or []:
        name = parameter.get("name")
        values = [v for k, v in parameter.items() if k.startswith("value")]
        if isinstance(name, str) and values:
            pairs.append((name, values[0]))
    return pairs


def export_params(level: Level, pairs: list[tuple[str, Any]], group: str | None) -> ExportParams:
    """The ExportParams of a kick-off (``_typeFilter`` queries are checked against the
    search parameters later, by ``check_type_filters``)."""
    types: list[str] | None = None
    since: datetime | None = None
    patients: list[str] | None = None
    filters: dict[str, list[str]] = {}
    elements: list[str] = []
    deidentify = False
    deid_rules: dict[str, Any] | None = None
    for name, value in pairs:
        if name == "includeAssociatedData":
            raise InvalidRequest(
                "includeAssociatedData is not supported by this server (no associated data "
                "such as Provenance is generated for exports)",
                expression=name,
            )
        if name == "_outputFormat":
            if value not in NDJSON_FORMATS:
                raise InvalidRequest(
                    f"_outputFormat '{str(value)[:60]}' is not supported; use "
                    "application/fhir+ndjson",
                    expression="_outputFormat",
                )
        elif name == "_type":
            types = (types or []) + _types(str(value))
        elif name == "_since":
            since = _since(str(value))
        elif name == "_typeFilter":
            for rtype, query in _type_filters(str(value)):
                filters.setdefault(rtype, []).append(query)
        elif name == "_elements":
            elements += _elements(str(value))
        elif name == "_deidentify":
            deidentify = str(value).lower() == "true"
        elif name == "_deidRules":
            deid_rules = rules_from_text(str(value), "_deidRules").data
        elif name == "patient":
            reference = value.get("reference") if isinstance(value, dict) else None
            parsed = parse_reference(reference) if isinstance(reference, str) else None
            if parsed is None or parsed.resource_type != "Patient" or level == "system":
                raise InvalidRequest(
                    "patient needs a Patient reference on Patient or Group $export",
                    expression="patient",
                )
            patients = (patients or []) + [parsed.id]
    outside = sorted(set(filters) - set(types)) if types else []
    if outside:
        raise InvalidRequest(
            f"_typeFilter names {', '.join(outside)}, which _type does not include",
            expression="_typeFilter",
        )
    _check_unprefixed(elements, types)
    if deid_rules is not None and not deidentify:
        raise InvalidRequest("_deidRules needs _deidentify=true", expression="_deidRules")
    return ExportParams(
        level,
        types,
        since,
        patients,
        group,
        deidentify,
        type_filters=filters or None,
        elements=elements or None,
        deid_rules=deid_rules,
    )


def check_type_filters(store: Store, params: ExportParams) -> None:
    """Check each ``_typeFilter`` query with the storage search, as the job will run it:
    unknown parameters, modifiers or malformed values are InvalidRequest now
    (https://build.fhir.org/ig/HL7/bulk-data/export.html#_typefilter-experimental-query-parameter)."""
    if not params.type_filters:
        return
    with store.begin(readonly=True) as repo:
        for rtype, queries in params.type_filters.items():
            for query in queries:
                try:
                    repo.check_criteria(rtype, parse_qsl(query, keep_blank_values=True))
                except InvalidRequest as exc:
                    raise InvalidRequest(
                        f"_typeFilter '{rtype}?{query[:80]}': {exc.diagnostics}",
                        expression="_typeFilter",
                    ) from None
