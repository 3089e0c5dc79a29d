"""fhir-service: a FHIR R4 interoperability service built around one oncology case."""

__version__ = "0.1.0"
