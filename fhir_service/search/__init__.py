"""search layer of fhir-service (see docs/architecture.md)."""
