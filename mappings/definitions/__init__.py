"""The definitions of the case mapping's own extensions, as the FHIR package
``fhir-service.case`` (``package/``, built by ``python -m mappings.definitions.build``;
docs/mapping.md). The command line installs it into the package cache beside the R4
core and mCODE, so that validators resolve the extensions the mapping writes."""

from pathlib import Path

PACKAGE = Path(__file__).parent / "package"
"""The unpacked package folder (package.json and the StructureDefinitions)."""
