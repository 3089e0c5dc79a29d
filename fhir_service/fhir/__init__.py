"""Pure FHIR knowledge: models, references, bundles, OperationOutcome. No I/O of ours."""
