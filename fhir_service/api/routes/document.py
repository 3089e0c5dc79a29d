"""Composition/[id]/$document (https://hl7.org/fhir/R4/composition-operation-document.html):
the document Bundle assembled from stored resources (https://hl7.org/fhir/R4/documents.html).

The Composition first, then every resource it references and, transitively, those they
reference (fhir_service.fhir.document), each read inside the caller's access scope: what
the caller may not read is left out, as if it did not exist (a Composition outside the
scope is 404). Each entry's fullUrl is the resource's absolute URL on this server, so the
stored relative references resolve inside the Bundle
(https://hl7.org/fhir/R4/bundle.html#references). The Bundle gets a new ``urn:uuid``
identifier (bdl-9) and the time of assembly as timestamp (bdl-10); it is returned
directly, as the single ``return`` out parameter, and never stored: ``persist=true``
and ``graph`` answer 422, ``id`` on the instance 400 (the operation forbids it).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from starlette.responses import Response

from fhir_service.api.deps import BASE_PATH, BaseDep, FormatDep, IdDep, StoreDep
from fhir_service.api.responses import fhir_response
from fhir_service.api.routes import interaction, operation
from fhir_service.api.routes.definitions import DOCUMENT
from fhir_service.errors import (
    Forbidden,
    Gone,
    InvalidRequest,
    NotFound,
    Unprocessable,
)
from fhir_service.fhir.document import (
    DocumentTooLarge,
    Entry,
    Resolver,
    document_bundle,
    document_entries,
)
from fhir_service.fhir.references import parse_reference
from fhir_service.storage import Repository, format_instant
from fhir_service.storage.ids import version_number

router = APIRouter(prefix=BASE_PATH, tags=["FHIR"])

URI_SYSTEM = "urn:ietf:rfc:3986"
MAX_ENTRIES = 10_000
"""Most resources one document may hold (422 beyond)."""


class NotSupported(Unprocessable):
    code = "not-supported"


def _check_parameters(request: Request) -> None:
    query = request.query_params
    if "id" in query:
        raise InvalidRequest(
            "The id parameter SHALL NOT be used on Composition/[id]/$document", expression="id"
        )
    if "graph" in query:
        raise NotSupported("$document does not support the graph parameter", expression="graph")
    persist = query.getlist("persist")
    if len(persist) > 1 or any(p not in ("true", "false") for p in persist):
        raise InvalidRequest("persist must be true or false, once", expression="persist")
    if persist == ["true"]:
        raise NotSupported(
            "$document does not store documents (persist=true is not supported)",
            expression="persist",
        )


def _resolver(repo: Repository, base: str) -> Resolver:
    """``resolve(reference, referrer)``: a stored resource this server holds and the caller
    may read, as ``(fullUrl, resource)``; None for anything else."""

    def resolve(reference: str, _referrer: str) -> Entry | None:
        parsed = parse_reference(reference)
        if parsed is None or (parsed.base is not None and parsed.base.rstrip("/") != base):
            return None
        version = None if parsed.version is None else version_number(parsed.version)
        if parsed.version is not None and version is None:
            return None
        try:
            if version is not None:
                stored = repo.vread(parsed.resource_type, parsed.id, version)
            else:
                stored = repo.read(parsed.resource_type, parsed.id)
        except (NotFound, Gone, Forbidden, InvalidRequest):
            return None
        if stored.resource is None:
            return None
        return f"{base}/{parsed.relative}", stored.resource

    return resolve


@router.get(
    "/Composition/{id}/$document",
    openapi_extra={
        **interaction("operation"),
        **operation("document", DOCUMENT, resource="Composition"),
    },
)
def document(
    id: IdDep, store: StoreDep, request: Request, fmt: FormatDep, base: BaseDep
) -> Response:
    """The Composition's document Bundle."""
    _check_parameters(request)
    with store.begin(readonly=True) as repo:
        composition = repo.read("Composition", id).resource
        if composition is None:  # a read answers Gone for a deletion; kept for the types
            raise Gone(f"Composition/{id} was deleted")
        head = (f"{base}/Composition/{id}", composition)
        try:
            entries = document_entries(head, _resolver(repo, base), limit=MAX_ENTRIES)
        except DocumentTooLarge as exc:
            raise Unprocessable(str(exc)) from None
    bundle = document_bundle(
        entries,
        identifier={"system": URI_SYSTEM, "value": f"urn:uuid:{uuid.uuid4()}"},
        timestamp=format_instant(datetime.now(UTC)),
    )
    return fhir_response(bundle, 200, fmt)
