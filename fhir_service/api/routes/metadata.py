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
from fhir_service.api.deps import BaseDep, FormatDep
from fhir_service.api.responses import fhir_response
from fhir_service.api.routes import CAPABILITY, INTERACTION, interaction
from fhir_service.fhir.models import is_resource_type
from fhir_service.search.registry import get_registry
from fhir_service.storage import format_instant

router = APIRouter()

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


def search_capabilities(resource_type: str) -> dict[str, Any]:
    """``searchParam``, ``searchInclude`` and ``searchRevInclude`` the search engine really
    supports for a type (https://hl7.org/fhir/R4/capabilitystatement-definitions.html)."""
    params = [p for p in get_registry().for_type(resource_type).values() if p.indexed]
    references = sorted(p.code for p in params if p.type == "reference")
    return {
        "searchInclude": ["*", *(f"{resource_type}:{code}" for code in references)],
        "searchParam": [
            {"name": p.code, "definition": p.url, "type": p.type}
            for p in sorted(params, key=lambda p: p.code)
        ],
    }


def capability_statement(app: FastAPI, base: str) -> dict[str, Any]:
    """The CapabilityStatement of ``app`` served at ``base``."""
    type_codes, system_codes, flags = registered(app)
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
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": started,
        "publisher": "fhir-service",
        "kind": "instance",
        "software": {"name": "fhir-service", "version": __version__},
        "implementation": {"description": "fhir-service FHIR R4 server", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "application/json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [
            {
                "mode": "server",
                "security": capability_security(app, base),
                "resource": [
                    {"type": t, **resource_entry, **search_capabilities(t)}
                    for t in resource_types()
                ],
                "interaction": [{"code": c} for c in system_codes],
            }
        ],
    }


@router.get("/metadata", openapi_extra=interaction("capabilities"))
def metadata(request: Request, fmt: FormatDep, base: BaseDep) -> Response:
    """The CapabilityStatement; computed once per application and base."""
    cached: dict[str, dict[str, Any]] = request.app.state.capabilities
    if base not in cached:
        cached[base] = capability_statement(request.app, base)
    return fhir_response(cached[base], 200, fmt)
