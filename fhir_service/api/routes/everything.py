"""Patient/[id]/$everything (https://hl7.org/fhir/R4/patient-operation-everything.html):
the Patient and every resource in its compartment, with ``_since``, ``_type`` and
``_count`` paging (keyset cursors, stable while data changes), and, as ``include``
entries of each page, the resources outside the compartment that the page's resources
reference (Medication, Practitioner, Organization, Location, Device...: "the server
SHOULD also return resources referenced by the patient compartment resources"). Under a
patient scope those stay outside the scope, so they are not returned (docs/search.md).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from fhir_service.api.deps import BASE_PATH, BaseDep, FormatDep, IdDep, StoreDep
from fhir_service.api.responses import fhir_response
from fhir_service.api.routes import interaction, operation
from fhir_service.api.routes.history import parse_count, parse_since
from fhir_service.api.routes.search import CURSOR, searchset
from fhir_service.errors import InvalidRequest
from fhir_service.fhir.models import is_resource_type
from fhir_service.search.compartment import patient_compartment
from fhir_service.search.query import Include, SearchRequest
from fhir_service.search.registry import get_registry

router = APIRouter(prefix=BASE_PATH, tags=["FHIR"])


def _types(requested: str | None, compartment: dict[str, tuple[str, ...]]) -> list[str]:
    members = sorted({"Patient", *compartment})
    if not requested:
        return members
    named = [t.strip() for t in requested.split(",") if t.strip()]
    unknown = [t for t in named if not is_resource_type(t)]
    if unknown:
        raise InvalidRequest(f"_type names unknown types: {', '.join(unknown)}", expression="_type")
    return [t for t in members if t in named] or ["Patient"]


EVERYTHING = "http://hl7.org/fhir/OperationDefinition/Patient-everything"


@router.get(
    "/Patient/{id}/$everything",
    openapi_extra={
        **interaction("operation"),
        **operation("everything", EVERYTHING, resource="Patient"),
    },
)
def everything(
    id: IdDep, store: StoreDep, request: Request, fmt: FormatDep, base: BaseDep
) -> Response:
    """The Patient's record as a searchset Bundle, paged."""
    query = request.query_params
    compartment = patient_compartment(get_registry())
    requested = query.get("_type")
    types = _types(requested, compartment)
    since = parse_since(query.get("_since"))
    search = SearchRequest(types=types, count=parse_count(query.get("_count")))
    search.includes = [Include("*", "*", None, iterate=False)]
    search.cursor = query.get(CURSOR)
    with store.begin(readonly=True) as repo:
        repo.read("Patient", id)
        page = repo.search_page(search, compartment=id, since=since)
    named = None if not requested else {t.strip() for t in requested.split(",")}
    page.included = [
        s
        for s in page.included
        if s.resource_type not in compartment
        and s.resource_type != "Patient"
        and (named is None or s.resource_type in named)
    ]
    pairs = list(query.multi_items())
    bundle = searchset(page, search, pairs, base, f"/Patient/{id}/$everything")
    return fhir_response(bundle, 200, fmt)
