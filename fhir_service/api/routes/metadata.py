"""GET [base]/metadata: the CapabilityStatement (https://hl7.org/fhir/R4/http.html#capabilities,
https://hl7.org/fhir/R4/capabilitystatement.html).

Generated from the routes really registered on the application: each route names
its interaction (``routes.interaction``); type-level ones apply to every resource
type the R4B models know, since storage accepts each of them.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from fhir_service import __version__
from fhir_service.api.auth.well_known import capability_security
from fhir_service.api.deps import BASE_PATH, BaseDep, FormatDep, StoreDep
from fhir_service.api.responses import fhir_response
from fhir_service.api.routes import ALL_TYPES, CAPABILITY, INTERACTION, OPERATION, interaction
from fhir_service.fhir.models import is_resource_type
from fhir_service.search.registry import Registry, get_registry
from fhir_service.storage import format_instant

router = APIRouter(prefix=BASE_PATH, tags=["FHIR"])

FHIR_VERSION = "4.0.1"
_SYSTEM_CODES = {"transaction", "batch", "search-system", "history-system"}
_TYPE_CODES = {
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
}
_ABSTRACT = {"Resource", "DomainResource"}
BULK_DATA = "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"
_BULK_OPERATIONS = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/"


@cache
def resource_types() -> tuple[str, ...]:
    """Every concrete resource type the R4B models define, sorted."""
    from fhir.resources.R4B import fhirtypes

    names = {n[:-4] for n in dir(fhirtypes) if n.endswith("Type") and n[:1].isupper()}
    return tuple(sorted(n for n in names - _ABSTRACT if is_resource_type(n)))


def registered(app: FastAPI) -> tuple[list[str], list[str], dict[str, Any]]:
    """(type-level codes, system-level codes, resource capability flags) of the routes of
    the FHIR routers included in ``app`` (``app.state.fhir_routers``)."""
    type_codes: list[str] = []
    system_codes: list[str] = []
    flags: dict[str, Any] = {}
    routes = [route for router in app.state.fhir_routers for route in router.routes]
    for route in routes:
        extra = route.openapi_extra if isinstance(route, APIRoute) else None
        if not extra or INTERACTION not in extra:
            continue
        code = extra[INTERACTION]
        capabilities = dict(extra.get(CAPABILITY) or {})
        if code in _SYSTEM_CODES:
            also = ["batch"] if capabilities.pop("batch", False) else []
            system_codes.extend(c for c in [code, *also] if c not in system_codes)
        elif code in _TYPE_CODES and code not in type_codes:
            type_codes.append(code)
        flags.update(capabilities)
    return type_codes, system_codes, flags


def operations(app: FastAPI) -> dict[str | None, list[dict[str, str]]]:
    """``operation`` entries of the routes that declare one, by resource type (None: system)."""
    found: dict[str | None, list[dict[str, str]]] = {}
    for router in app.state.fhir_routers:
        for route in router.routes:
            extra = route.openapi_extra if isinstance(route, APIRoute) else None
            if not extra or OPERATION not in extra:
                continue
            spec = extra[OPERATION]
            entry = {"name": spec["name"], "definition": spec["definition"]}
            entries = found.setdefault(spec["resource"], [])
            if entry not in entries:
                entries.append(entry)
    return found


def _absolute(
    declared: dict[str | None, list[dict[str, str]]], base: str
) -> dict[str | None, list[dict[str, str]]]:
    """The entries with the server's own definitions (relative to the base) made absolute."""
    return {
        rtype: [
            {**e, "definition": e["definition"]}
            if "://" in e["definition"]
            else {**e, "definition": f"{base}/{e['definition']}"}
            for e in entries
        ]
        for rtype, entries in declared.items()
    }


def _operations_of(declared: dict[str | None, list[dict[str, str]]], rtype: str) -> dict[str, Any]:
    """The ``operation`` entry of one resource type: its own and those of every type (``*``)."""
    found = declared.get(rtype, []) + declared.get(ALL_TYPES, [])
    return {"operation": found} if found else {}


def search_capabilities(resource_type: str, registry: Registry | None = None) -> dict[str, Any]:
    """``searchParam`` and ``searchInclude`` the search engine really supports for a type
    (https://hl7.org/fhir/R4/capabilitystatement-definitions.html): the core parameters and
    the active SearchParameters stored on the server (``registry``)."""
    registry = registry or get_registry()
    params = [p for p in registry.for_type(resource_type).values() if p.indexed]
    references = sorted(p.code for p in params if p.type == "reference")
    return {
        "searchInclude": ["*", *(f"{resource_type}:{code}" for code in references)],
        "searchParam": [
            {"name": p.code, "definition": p.url, "type": p.type}
            for p in sorted(params, key=lambda p: p.code)
        ],
    }


def capability_statement(
    app: FastAPI, base: str, registry: Registry | None = None
) -> dict[str, Any]:
    """The CapabilityStatement of ``app`` served at ``base`` (search parameters of
    ``registry``, default the core ones)."""
    type_codes, system_codes, flags = registered(app)
    declared = _absolute(operations(app), base)
    bulk = any(
        o["definition"].startswith(_BULK_OPERATIONS) for ops in declared.values() for o in ops
    )
    started = format_instant(app.state.started)
    resource_entry: dict[str, Any] = {
        "interaction": [{"code": c} for c in type_codes],
        "versioning": "versioned-update",
        "readHistory": "vread" in type_codes,
        "updateCreate": bool(flags.get("updateCreate")),
        "conditionalCreate": bool(flags.get("conditionalCreate")),
        "conditionalRead": "modified-since",
        "conditionalUpdate": bool(flags.get("conditionalUpdate")),
        "conditionalDelete": flags.get("conditionalDelete", "not-supported"),
    }
    statement: dict[str, Any] = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": started,
        "publisher": "fhir-service",
        "kind": "instance",
        "software": {"name": "fhir-service", "version": __version__},
        "implementation": {"description": "fhir-service FHIR R4 server", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "application/json", "json"],
        "patchFormat": ["application/json-patch+json", "application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "security": capability_security(app, base),
                "resource": [
                    {
                        "type": t,
                        **resource_entry,
                        **search_capabilities(t, registry),
                        **_operations_of(declared, t),
                    }
                    for t in resource_types()
                ],
                "interaction": [{"code": c} for c in system_codes],
                **({"operation": declared[None]} if None in declared else {}),
            }
        ],
    }
    if bulk:
        statement["instantiates"] = [BULK_DATA]
    return statement


@router.get("/metadata", openapi_extra=interaction("capabilities"))
def metadata(request: Request, fmt: FormatDep, base: BaseDep, store: StoreDep) -> Response:
    """The CapabilityStatement; computed once per application, base and set of stored
    SearchParameters (a custom one POSTed is listed from then on)."""
    with store.begin(readonly=True) as repo:
        registry = repo.search_registry()
    cached: dict[str, tuple[Registry, dict[str, Any]]] = request.app.state.capabilities
    if base not in cached or cached[base][0] is not registry:
        cached[base] = (registry, capability_statement(request.app, base, registry))
    return fhir_response(cached[base][1], 200, fmt)
