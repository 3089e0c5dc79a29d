"""The web pages at ``/ui``: patients, a patient's timeline, bundle validation and sync/export
status. The pages are server-rendered shells; their scripts read everything from the FHIR
REST API over HTTP (https://hl7.org/fhir/R4/http.html), so the API stays the contract.
"""

from fhir_service.api.ui.pages import router

__all__ = ["router"]
