"""The `fhir-service` command line (typer)."""
