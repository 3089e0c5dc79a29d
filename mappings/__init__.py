"""Case file -> FHIR R4 resources: one module per target resource type, pure functions."""
