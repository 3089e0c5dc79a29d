"""What every mapping function shares: the anchor date, deterministic ids, references.

Ids are UUIDv5 derived from the case id and the fact key, so mapping the same
case twice yields the same resources (https://hl7.org/fhir/R4/resource.html#id).
Each resource also carries a business identifier with the same UUID as a URI
(system ``urn:ietf:rfc:3986``), which transaction Bundles use for conditional
create (https://hl7.org/fhir/R4/http.html#ccreate), so re-posting never duplicates.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

URI_SYSTEM = "urn:ietf:rfc:3986"
_CASE_NAMESPACE = uuid.UUID("6f0d4a4e-6c1e-5b8a-9d2a-3c7e1f0b5a10")


@dataclass
class MappingContext:
    """Per-run state: the case id, the anchor date (day 0) and the resources made so far."""

    case_id: str
    anchor_date: date
    anchor_event: str | None = None
    """What day 0 is (the case file's ``anchor.event``), carried by derived dates."""
    _namespace: uuid.UUID = field(init=False)

    def __post_init__(self) -> None:
        self._namespace = uuid.uuid5(_CASE_NAMESPACE, self.case_id)

    def resource_id(self, resource_type: str, key: str) -> str:
        """The deterministic id of the resource of ``resource_type`` made from fact ``key``."""
        return str(uuid.uuid5(self._namespace, f"{resource_type}/{key}"))

    def full_url(self, resource_type: str, key: str) -> str:
        """The Bundle fullUrl (``urn:uuid:…``) of that resource."""
        return f"urn:uuid:{self.resource_id(resource_type, key)}"

    def reference(self, resource_type: str, key: str, display: str | None = None) -> dict[str, Any]:
        """A Reference to that resource, resolvable inside the case Bundle."""
        ref: dict[str, Any] = {"reference": self.full_url(resource_type, key)}
        if display:
            ref["display"] = display
        return ref

    def identifier(self, resource_type: str, key: str) -> dict[str, str]:
        """The business identifier of that resource (its UUID as a URI)."""
        return {"system": URI_SYSTEM, "value": self.full_url(resource_type, key)}
