"""The FHIR REST façade (https://hl7.org/fhir/R4/http.html): ``create_app(settings)``."""

from fhir_service.api.app import create_app

__all__ = ["create_app"]
