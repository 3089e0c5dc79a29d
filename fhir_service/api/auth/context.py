"""Who is asking and what they may do: the AccessContext of one request
(https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html), and the audit
note its repository calls fill in (https://hl7.org/fhir/R4/auditevent.html).

The context turns the token's SMART scopes into the storage ``AccessScope`` that every
unit of work of the request carries (``fhir_service.storage.access.access_scope``):
``system/`` scopes grant their types entirely, ``patient/`` scopes only the compartment
of the token's patient.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from starlette.requests import Request

from fhir_service.errors import Unauthorized
from fhir_service.fhir.smart_scopes import ScopeSet
from fhir_service.storage.access import AccessScope, Reach, access_scope

MAX_AUDIT_ENTITIES = 50


@dataclass
class AuditNote:
    """What a request did to data, collected for its audit event (references only); the
    request's repositories record into it (``fhir_service.storage.repository.Journal``)."""

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
    ``None`` grants everything: open mode)."""

    client_id: str
    scopes: ScopeSet | None = None
    patient: str | None = None
    note: AuditNote = field(default_factory=AuditNote)

    @classmethod
    def open(cls) -> AccessContext:
        return cls(client_id="anonymous")

    @cached_property
    def scope(self) -> AccessScope:
        """The storage scope every unit of work of this request carries."""
        return access_scope(self.scopes, self.patient)

    def unrestricted(self) -> bool:
        """Open mode, or a ``system/*`` scope granting every action."""
        return self.scope.unrestricted

    def reach(self, resource_type: str, action: str) -> Reach | None:
        return self.scope.reach(resource_type, action)

    def require(self, resource_type: str, action: str) -> Reach:
        """The reach of ``action`` on the type; Forbidden when no scope grants it."""
        return self.scope.require(resource_type, action)


def request_access(request: Request) -> AccessContext:
    """The request's AccessContext (open mode: everything); Unauthorized when smart mode
    left none (default deny)."""
    access = getattr(request.state, "access", None)
    if isinstance(access, AccessContext):
        return access
    if request.app.state.security.mode != "open":
        raise Unauthorized("This request carries no authenticated access context")
    return AccessContext.open()
