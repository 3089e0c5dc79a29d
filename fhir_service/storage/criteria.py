"""Search criteria strings of conditional interactions (https://hl7.org/fhir/R4/http.html#ccreate).

``If-None-Exist: identifier=http://sys|123`` and ``Patient?identifier=...`` carry a
query string; these helpers parse it and give it one normal form. Criteria must select:
empty ones, and ones of result parameters only (``_count``, ``_sort``, ``_summary``,
``_elements``, ``_include``, ...; https://hl7.org/fhir/R4/search.html#return), are a 400,
since they would match every resource of the type.
"""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl

from fhir_service.errors import InvalidRequest
from fhir_service.search.query import RESULT_PARAMS
from fhir_service.storage.repository import SearchParams


def parse_criteria(criteria: str, resource_type: str | None = None) -> list[tuple[str, str]]:
    """Query pairs of ``criteria``; a leading ``Type?`` (which must match) or ``?`` is dropped."""
    text = criteria.strip()
    if "?" in text:
        head, _, text = text.partition("?")
        if head and resource_type is not None and head != resource_type:
            raise InvalidRequest(
                f"Criteria '{criteria}' name type {head}, expected {resource_type}"
            )
    pairs = parse_qsl(text, keep_blank_values=True)
    if not pairs:
        raise InvalidRequest(f"Empty search criteria '{criteria}'")
    for name, value in pairs:
        if not name or value == "":
            raise InvalidRequest(f"Search criteria '{criteria}' has an empty parameter")
    if all(name.split(":", 1)[0] in RESULT_PARAMS for name, _ in pairs):
        names = ", ".join(sorted({name for name, _ in pairs}))
        raise InvalidRequest(
            f"Search criteria '{criteria}' hold only result parameters ({names}), which select "
            "nothing: a conditional interaction needs criteria that select resources"
        )
    return pairs


def normalize_criteria(params: SearchParams) -> str:
    """One text for equal criteria: pairs sorted, joined as a query string."""
    return "&".join(f"{name}={value}" for name, value in sorted(params))


def criteria_hash(resource_type: str, params: SearchParams) -> str:
    """SHA-256 hex of the type and normalized criteria: the conditional-claim key."""
    text = f"{resource_type}?{normalize_criteria(params)}"
    return hashlib.sha256(text.encode()).hexdigest()
