"""`python -m fhir_service` runs the same command line as `fhir-service`."""

from fhir_service.cli.app import main

if __name__ == "__main__":  # not when a worker process (spawn) imports it
    main()
