"""`python -m fhir_service` runs the same command line as `fhir-service`."""

from fhir_service.cli.app import main

main()
