"""Who is asking and what they may do: the AccessContext of one request
(https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html), and the audit
note its repository calls fill in (https://hl7.org/fhir/R4/auditevent.html).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fhir_service.api.auth.compartment import PatientCompartment
from fhir_service.api.auth.scopes import Reach, ScopeSet
from fhir_service.errors import Forbidden
from fhir_service.storage.repository import JSON

ACTION_NAMES = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}
MAX_AUDIT_ENTITIES = 50


@dataclass
class AuditNote:
    """What a request did to data, collected for its audit event (references only)."""

    subtype: str | None = None
    entities: list[str] = field(default_factory=list)
    count: int = 0

    def record(self, subtype: str, refs: list[str] | None = None) -> None:
        if self.subtype is None:
            self.subtype = subtype
        for ref in refs or []:
            self.count += 1
            if len(self.entities) < MAX_AUDIT_ENTITIES and ref not in self.entities:
                self.entities.append(ref)


@dataclass
class AccessContext:
    """Who is asking (client, patient context) and what they may do (``scopes``;
    ``None`` grants everything: open mode and internal work)."""

    client_id: str
    scopes: ScopeSet | None = None
    patient: str | None = None
    compartment: PatientCompartment | None = None
    note: AuditNote = field(default_factory=AuditNote)

    @classmethod
    def open(cls) -> AccessContext:
        return cls(client_id="anonymous")

    def unrestricted(self) -> bool:
        """Open mode, or a ``system/*`` scope granting every action."""
        if self.scopes is None:
            return True
        return any(
            s.context == "system" and s.resource_type == "*" and len(s.actions) == 5
            for s in self.scopes.scopes
        )

    def reach(self, resource_type: str, action: str) -> Reach | None:
        if self.scopes is None:
            return "all"
        return self.scopes.reach(resource_type, action, has_patient=self.patient is not None)

    def require(self, resource_type: str, action: str) -> Reach:
        """The reach of ``action`` on the type; Forbidden when no scope grants it."""
        reach = self.reach(resource_type, action)
        if reach is None:
            raise Forbidden(
                f"The access token's scopes do not allow {ACTION_NAMES[action]} of {resource_type}"
            )
        return reach

    def in_compartment(self, resource: JSON | None) -> bool:
        if resource is None or self.patient is None or self.compartment is None:
            return False
        return self.compartment.contains(resource, self.patient)

    def may_see(self, resource: JSON | None, actions: str = "rs") -> bool:
        """Whether a resource may be returned under any of ``actions`` (read, search)."""
        if resource is None:
            return False
        rtype = str(resource.get("resourceType", ""))
        reaches = {self.reach(rtype, action) for action in actions}
        if "all" in reaches:
            return True
        return "compartment" in reaches and self.in_compartment(resource)
