"""The case file: model (schema_version 1.0), relative times, loader with located errors.

Public API::

    from mappings.case import Case, CaseFileError, load_case, loads_case
    from mappings.case.timing import RelativeTime, Duration, parse_time, resolve

Format: docs/case-format.md; JSON Schema: docs/case-schema.json.
"""

from mappings.case.loader import CaseFileError, load_case, loads_case
from mappings.case.model import Case

__all__ = ["Case", "CaseFileError", "load_case", "loads_case"]
