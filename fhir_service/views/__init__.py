"""SQL on FHIR v2 views (https://sql-on-fhir.org/ig/latest/): a ViewDefinition
turns resources into flat rows, one table per view.

    definition  parse and check a ViewDefinition into a compiled ``View``
    fhirpath    the FHIRPath subset, on fhirpathpy, with the functions the spec adds
    fastpath    direct JSON walkers for the common paths (same values, much faster)
    boundary    lowBoundary()/highBoundary()
    runner      rows from resources, lazily (one resource at a time)
    writers     CSV, JSON, NDJSON and Parquet output
    ndjson      resources read from an NDJSON file
"""

from fhir_service.views.definition import View, parse_view
from fhir_service.views.runner import run_view

__all__ = ["View", "parse_view", "run_view"]
