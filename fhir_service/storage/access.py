"""The access scope: what one caller may reach, as a value every unit of work carries
(https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html,
https://hl7.org/fhir/R4/compartmentdefinition-patient.html).

A scope is a set of grants, each naming a resource type (or ``*``), the interactions it
allows (``c`` create, ``r`` read, ``u`` update, ``d`` delete, ``s`` search) and its reach:
``all`` resources of the type, or only those in the ``compartment`` of the scope's
patient. ``AccessScope.full()`` grants everything (open mode, internal work); a scope
without grants reaches nothing. The repository applies the scope inside the SQL of
every operation; what lies outside it is treated as if it did not exist.

``access_scope`` builds a scope from SMART scopes (``fhir_service.fhir.smart_scopes``):
the api layer for each request, the export for the owner of a job it runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from fhir_service.errors import Forbidden
from fhir_service.fhir.smart_scopes import ScopeSet

Action = Literal["c", "r", "u", "d", "s"]
Reach = Literal["all", "compartment"]
ACTION_NAMES = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}


@dataclass(frozen=True, slots=True)
class Grant:
    """Interactions ``actions`` on resources of ``resource_type`` (``*``: every type)."""

    resource_type: str
    actions: frozenset[str]
    reach: Reach

    def covers(self, resource_type: str, action: str) -> bool:
        return action in self.actions and self.resource_type in ("*", resource_type)


@dataclass(frozen=True, slots=True)
class AccessScope:
    """What one caller may reach. ``grants`` None: everything."""

    grants: tuple[Grant, ...] | None
    patient: str | None = None

    @classmethod
    def full(cls) -> AccessScope:
        """Every interaction on every resource (open mode, the service's own work)."""
        return cls(None)

    @classmethod
    def of(cls, grants: Iterable[Grant], patient: str | None = None) -> AccessScope:
        """The given grants; compartment grants need ``patient`` (they are dropped without)."""
        kept = tuple(g for g in grants if g.reach == "all" or patient is not None)
        return cls(kept, patient)

    @property
    def unrestricted(self) -> bool:
        """Every interaction on every resource of every type."""
        if self.grants is None:
            return True
        return any(
            g.resource_type == "*" and g.reach == "all" and len(g.actions) == 5 for g in self.grants
        )

    def reach(self, resource_type: str, action: str) -> Reach | None:
        """``all`` when a grant of reach all covers the action on the type, ``compartment``
        when only a compartment grant does, else None."""
        if self.grants is None:
            return "all"
        best: Reach | None = None
        for grant in self.grants:
            if grant.covers(resource_type, action):
                if grant.reach == "all":
                    return "all"
                best = "compartment"
        return best

    def best_reach(self, resource_type: str, actions: str) -> Reach | None:
        """The widest reach any of ``actions`` has on the type."""
        reaches = {self.reach(resource_type, a) for a in actions}
        if "all" in reaches:
            return "all"
        return "compartment" if "compartment" in reaches else None

    def require(self, resource_type: str, action: str) -> Reach:
        """The reach of ``action`` on the type; Forbidden when no grant covers it."""
        reach = self.reach(resource_type, action)
        if reach is None:
            raise Forbidden(
                f"The access token's scopes do not allow {ACTION_NAMES[action]} of {resource_type}"
            )
        return reach


def access_scope(scopes: ScopeSet | None, patient: str | None) -> AccessScope:
    """The scope of SMART ``scopes`` (None: everything, as in open mode): ``system/``
    scopes grant their types entirely, ``patient/`` scopes only the compartment of
    ``patient`` (nothing without one); ``user/`` scopes grant nothing."""
    if scopes is None:
        return AccessScope.full()
    grants = []
    for scope in scopes.scopes:
        if scope.context == "system":
            grants.append(Grant(scope.resource_type, scope.actions, "all"))
        elif scope.context == "patient" and patient is not None:
            grants.append(Grant(scope.resource_type, scope.actions, "compartment"))
    return AccessScope.of(grants, patient)
