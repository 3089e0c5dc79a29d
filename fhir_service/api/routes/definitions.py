"""OperationDefinitions of the operations this server defines itself, served at
``GET [base]/OperationDefinition/{id}`` so that the CapabilityStatement's
``operation.definition`` resolves (https://hl7.org/fhir/R4/operationdefinition.html).

Operations of the core specification and of Bulk Data name their published canonicals
instead (``http://hl7.org/fhir/OperationDefinition/...``). A definition here is named by
a path relative to the base, ``OperationDefinition/{id}``; the CapabilityStatement and
the resource's ``url`` make it absolute with the base the server is reached at.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from fhir_service import __version__
from fhir_service.api.deps import BASE_PATH, BaseDep, FormatDep
from fhir_service.api.openapi import documented
from fhir_service.api.responses import fhir_response

router = APIRouter(prefix=BASE_PATH, tags=["FHIR"])

REINDEX_ID = "fhir-service-reindex"
REINDEX = f"OperationDefinition/{REINDEX_ID}"
DOCUMENT_ID = "fhir-service-composition-document"
DOCUMENT = f"OperationDefinition/{DOCUMENT_ID}"
CORE_DOCUMENT = "http://hl7.org/fhir/OperationDefinition/Composition-document"


def _parameter(name: str, use: str, low: int, high: str, kind: str, doc: str) -> dict[str, Any]:
    return {"name": name, "use": use, "min": low, "max": high, "type": kind, "documentation": doc}


def reindex_definition(base: str) -> dict[str, Any]:
    """The OperationDefinition of ``$reindex`` (docs/search.md#reindexing)."""
    return {
        "resourceType": "OperationDefinition",
        "id": REINDEX_ID,
        "url": f"{base}/{REINDEX}",
        "version": __version__,
        "name": "Reindex",
        "title": "Rebuild the search index of stored resources",
        "status": "active",
        "kind": "operation",
        "publisher": "fhir-service",
        "description": (
            "Queues a background job that rewrites the search index rows of the stored "
            "resources of the named types (every stored type when none is named). Answers 202 "
            "with the job's status URL in Content-Location; GET on it reports progress."
        ),
        "affectsState": True,
        "code": "reindex",
        "system": True,
        "type": False,
        "instance": False,
        "parameter": [
            _parameter("type", "in", 0, "*", "code", "Resource types to reindex."),
            _parameter(
                "url", "in", 0, "*", "uri", "SearchParameter URLs; their base types are reindexed."
            ),
            _parameter("return", "out", 1, "1", "Parameters", "The queued job."),
        ],
    }


def document_definition(base: str) -> dict[str, Any]:
    """The OperationDefinition of ``Composition/{id}/$document`` as served here: the core
    operation (https://hl7.org/fhir/R4/composition-operation-document.html) on an instance
    only, without storing the document or a GraphDefinition (docs/rest-api.md)."""
    return {
        "resourceType": "OperationDefinition",
        "id": DOCUMENT_ID,
        "url": f"{base}/{DOCUMENT}",
        "version": __version__,
        "name": "CompositionDocument",
        "title": "Generate a document from a stored Composition",
        "status": "active",
        "kind": "operation",
        "publisher": "fhir-service",
        "description": (
            "Assembles the document Bundle of the Composition: the Composition first, then "
            "every stored resource it references, transitively, that the caller may read. "
            "The Bundle is returned directly (the single out parameter 'return'), never stored."
        ),
        "affectsState": False,
        "code": "document",
        "base": CORE_DOCUMENT,
        "resource": ["Composition"],
        "system": False,
        "type": False,
        "instance": True,
        "parameter": [
            _parameter(
                "persist",
                "in",
                0,
                "1",
                "boolean",
                "Only false is supported: the document is not stored (true answers 422).",
            ),
            _parameter("return", "out", 1, "1", "Bundle", "The document (Bundle.type document)."),
        ],
    }


DEFINITIONS = {REINDEX_ID: reindex_definition, DOCUMENT_ID: document_definition}


@router.get(f"/{REINDEX}", openapi_extra=documented(answers={200: "OperationDefinition"}))
def reindex_operation_definition(base: BaseDep, fmt: FormatDep) -> Response:
    """The OperationDefinition of ``$reindex``."""
    return fhir_response(reindex_definition(base), 200, fmt)


@router.get(f"/{DOCUMENT}", openapi_extra=documented(answers={200: "OperationDefinition"}))
def document_operation_definition(base: BaseDep, fmt: FormatDep) -> Response:
    """The OperationDefinition of ``Composition/{id}/$document``."""
    return fhir_response(document_definition(base), 200, fmt)
