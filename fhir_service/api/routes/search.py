"""Search over HTTP (https://hl7.org/fhir/R4/search.html, https://hl7.org/fhir/R4/http.html#search):
GET/POST type-level search, system-level search with ``_type`` and Patient
compartment search (https://hl7.org/fhir/R4/compartmentdefinition.html), answered
with ``searchset`` Bundles, keyset paging links and an OperationOutcome entry for
ignored parameters (``Prefer: handling=strict`` makes those a 400).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from fhir_service.api.deps import BASE_PATH, BaseDep, FormatDep, IdDep, StoreDep, TypeDep
from fhir_service.api.negotiation import Format
from fhir_service.api.responses import fhir_response
from fhir_service.api.routes import interaction
from fhir_service.errors import InvalidRequest, Issue, NotFound
from fhir_service.fhir.models import is_resource_type
from fhir_service.fhir.outcome import operation_outcome
from fhir_service.fhir.summary import select_elements, summarize
from fhir_service.search.compartment import patient_compartment
from fhir_service.search.query import SearchRequest, parse_search
from fhir_service.search.registry import get_registry
from fhir_service.storage import SearchPage, Store, Stored
from fhir_service.storage import reindex_run as reindexing

router = APIRouter(prefix=BASE_PATH, tags=["FHIR"])


CURSOR = "_cursor"
MAX_BODY = 64 * 1024
_FORM = "application/x-www-form-urlencoded"


def strict_handling(request: Request) -> bool:
    """True when ``Prefer: handling=strict`` (https://hl7.org/fhir/R4/http.html#Prefer)."""
    prefer = request.headers.get("prefer") or ""
    for part in prefer.replace(";", ",").split(","):
        name, _, value = part.partition("=")
        if name.strip().lower() == "handling":
            return value.strip().strip('"').lower() == "strict"
    return False


def _shape(resource: dict[str, Any], search: SearchRequest) -> dict[str, Any]:
    if search.elements:
        return select_elements(resource, list(search.elements))
    if search.summary in ("true", "text", "data"):
        return summarize(resource, search.summary)
    return resource


def _entry(stored: Stored, base: str, mode: str, search: SearchRequest) -> dict[str, Any]:
    assert stored.resource is not None
    return {
        "fullUrl": f"{base}/{stored.resource_type}/{stored.id}",
        "resource": _shape(stored.resource, search),
        "search": {"mode": mode},
    }


def searchset(
    page: SearchPage,
    search: SearchRequest,
    pairs: list[tuple[str, str]],
    base: str,
    path: str,
    warnings: Sequence[Issue] = (),
) -> dict[str, Any]:
    """The searchset Bundle of one page (https://hl7.org/fhir/R4/bundle.html#searchset);
    ignored parameters and ``warnings`` go into an OperationOutcome entry."""
    kept = [(k, v) for k, v in pairs if k != CURSOR]

    def link(relation: str, cursor: str | None) -> dict[str, str]:
        query = urlencode([*kept, (CURSOR, cursor)] if cursor else kept)
        return {"relation": relation, "url": f"{base}{path}" + (f"?{query}" if query else "")}

    links = [link("self", search.cursor)]
    if page.next_cursor:
        links.append(link("next", page.next_cursor))
    if page.previous_cursor:
        links.append(link("previous", page.previous_cursor))
    entries = [_entry(s, base, "match", search) for s in page.matches]
    entries += [_entry(s, base, "include", search) for s in page.included]
    issues = [Issue("warning", "not-supported", text) for text in search.ignored]
    issues += warnings
    if issues:
        entries.append({"resource": operation_outcome(issues), "search": {"mode": "outcome"}})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if page.total is not None:
        bundle["total"] = page.total
    bundle["link"] = links
    if entries:
        bundle["entry"] = entries
    return bundle


async def request_pairs(request: Request) -> list[tuple[str, str]]:
    """Query parameters, plus a form body for POST ``_search``."""
    pairs = list(request.query_params.multi_items())
    if request.method == "POST":
        content_type = (request.headers.get("content-type") or "").split(";")[0].strip()
        if content_type == _FORM:
            body = await request.body()
            pairs += parse_qsl(body[:MAX_BODY].decode("utf-8", "replace"), keep_blank_values=True)
    return pairs


def run_search(
    store: Store,
    types: list[str],
    pairs: list[tuple[str, str]],
    request: Request,
    fmt: Format,
    base: str,
    path: str,
    compartment: str | None = None,
) -> Response:
    """Parse, run and answer one search (``compartment``: in Patient/<id>'s compartment)."""
    with store.begin(readonly=True) as repo:
        registry = repo.search_registry()
        search = parse_search(registry, types, pairs, strict=strict_handling(request))
        page = repo.search_page(search, compartment=compartment)
    warnings = reindex_warnings(request, search)
    return fhir_response(searchset(page, search, pairs, base, path, warnings), 200, fmt)


def reindex_warnings(request: Request, search: SearchRequest) -> list[Issue]:
    """One warning per queued or running reindex job of a searched type: until it ends,
    parameters changed since the resources were written may miss some of them."""
    runner = getattr(request.app.state, "job_runner", None)
    if runner is None or not (search.criteria or search.sort):
        return []
    warnings = []
    for job in reindexing.active(runner.jobs):
        if job.types is None or set(job.types) & set(search.types):
            progress = f"{job.done} of {job.total}" if job.status == "running" else "queued"
            text = (
                f"Reindex job {job.id} ({job.reason}; {progress}) is not finished: results "
                "for SearchParameters changed since resources were stored may be incomplete"
            )
            warnings.append(Issue("warning", "incomplete", text))
    return warnings


@router.get("/{type}", openapi_extra=interaction("search-type"))
async def search_type(
    type: TypeDep, store: StoreDep, request: Request, fmt: FormatDep, base: BaseDep
) -> Response:
    """Type-level search with GET."""
    pairs = await request_pairs(request)
    return run_search(store, [type], pairs, request, fmt, base, f"/{type}")


@router.post("/{type}/_search", openapi_extra=interaction("search-type"))
async def search_type_post(
    type: TypeDep, store: StoreDep, request: Request, fmt: FormatDep, base: BaseDep
) -> Response:
    """Type-level search with POST (form-encoded parameters)."""
    pairs = await request_pairs(request)
    return run_search(store, [type], pairs, request, fmt, base, f"/{type}")


def _system_types(store: Store, pairs: list[tuple[str, str]]) -> list[str]:
    named = [t.strip() for k, v in pairs if k == "_type" for t in v.split(",") if t.strip()]
    for name in named:
        if not is_resource_type(name):
            raise NotFound(f"Unknown resource type '{name[:64]}' in _type", expression="_type")
    if named:
        return sorted(set(named))
    with store.begin(readonly=True) as repo:
        return sorted(repo.counts()) or ["Patient"]


@router.get("", openapi_extra=interaction("search-system"))
async def search_system(
    store: StoreDep, request: Request, fmt: FormatDep, base: BaseDep
) -> Response:
    """System-level search across ``_type`` (or every stored type)."""
    pairs = await request_pairs(request)
    if not pairs:
        raise InvalidRequest(
            "A system-level search needs parameters, e.g. _type=Patient,Observation",
            expression="_type",
        )
    types = _system_types(store, pairs)
    return run_search(store, types, pairs, request, fmt, base, "")


@router.get("/Patient/{id}/{type}", openapi_extra=interaction("search-compartment"))
async def search_compartment(
    id: IdDep, type: TypeDep, store: StoreDep, request: Request, fmt: FormatDep, base: BaseDep
) -> Response:
    """Search in a Patient's compartment: ``Patient/x/Observation?...``."""
    if type != "Patient" and type not in patient_compartment(get_registry()):
        raise NotFound(f"{type} is not in the Patient compartment", expression="type")
    pairs = await request_pairs(request)
    return run_search(store, [type], pairs, request, fmt, base, f"/Patient/{id}/{type}", id)
