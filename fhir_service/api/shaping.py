"""``_summary`` and ``_elements`` request parameters on reads
(https://hl7.org/fhir/R4/search.html#summary, https://hl7.org/fhir/R4/search.html#elements).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir_service.errors import InvalidRequest
from fhir_service.fhir.summary import SUMMARY_MODES, select_elements, summarize, unknown_elements


@dataclass(frozen=True, slots=True)
class Shape:
    """How to cut a resource before returning it."""

    summary: str | None = None
    elements: tuple[str, ...] = ()

    def apply(self, resource: dict[str, Any]) -> dict[str, Any]:
        if self.elements:
            return select_elements(resource, list(self.elements))
        if self.summary is not None:
            return summarize(resource, self.summary)
        return resource


def parse_shape(query: dict[str, str], resource_type: str, *, allow_count: bool = False) -> Shape:
    """The Shape of ``_summary`` / ``_elements``; InvalidRequest for unknown values."""
    summary = query.get("_summary")
    elements_text = query.get("_elements")
    if summary is not None and summary not in SUMMARY_MODES:
        raise InvalidRequest(
            f"_summary '{summary}' is not one of true, text, data, count, false",
            expression="_summary",
        )
    if summary == "count" and not allow_count:
        raise InvalidRequest("_summary=count applies to searches, not reads", expression="_summary")
    if summary is not None and elements_text is not None:
        raise InvalidRequest("_summary and _elements cannot be combined", expression="_elements")
    elements: tuple[str, ...] = ()
    if elements_text is not None:
        elements = tuple(e.strip() for e in elements_text.split(",") if e.strip())
        if not elements:
            raise InvalidRequest("_elements is empty", expression="_elements")
        unknown = unknown_elements(resource_type, list(elements))
        if unknown:
            raise InvalidRequest(
                f"_elements names no element of {resource_type}: {', '.join(unknown)}",
                expression="_elements",
            )
    return Shape(summary if summary != "false" else None, elements)
