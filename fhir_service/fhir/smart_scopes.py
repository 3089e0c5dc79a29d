"""SMART scopes, v1 and v2 syntax (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html).

A clinical scope is ``<context>/<type>.<permissions>``: context ``patient``, ``user`` or
``system``; type a resource type or ``*``; permissions ``read`` / ``write`` / ``*`` (v1)
or an ordered subset of ``cruds`` (v2: create, read, update, delete, search). v1 ``read``
grants read and search, ``write`` create, update and delete.

``system/`` scopes grant access to every resource of the type; ``patient/`` scopes only
to the patient compartment of the token's patient. ``user/`` scopes are parsed but grant
nothing: the service has no user identity to scope them by. v2 scopes carrying a query
(``patient/Observation.rs?category=...``) are also kept out, so a grant never exceeds
what the service can enforce.

The syntax lives here, below storage, so that the api layer (tokens, requests) and an
export job (the scopes its owner started it with) read scopes alike;
``fhir_service.storage.access.access_scope`` turns them into an ``AccessScope``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Action = Literal["c", "r", "u", "d", "s"]
Reach = Literal["all", "compartment"]

ACTIONS: tuple[Action, ...] = ("c", "r", "u", "d", "s")
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
_SCOPE = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]{0,63})\.([a-z*]+)$")
_V2 = re.compile(r"^c?r?u?d?s?$")


@dataclass(frozen=True, slots=True)
class Scope:
    """One clinical scope: its context, resource type (``*`` for all) and permissions."""

    context: str
    resource_type: str
    actions: frozenset[str]
    text: str

    def grants(self, resource_type: str, action: str) -> bool:
        return action in self.actions and self.resource_type in ("*", resource_type)


def parse_scope(text: str) -> Scope | None:
    """The clinical scope ``text`` stands for, or ``None`` (other scopes, unknown syntax)."""
    match = _SCOPE.match(text)
    if match is None:
        return None
    context, resource_type, permissions = match.groups()
    letters = _V1.get(permissions)
    if letters is None:
        if not permissions or not _V2.match(permissions):
            return None
        letters = permissions
    return Scope(context, resource_type, frozenset(letters), text)


@dataclass(frozen=True, slots=True)
class ScopeSet:
    """The clinical scopes of one token or request."""

    scopes: tuple[Scope, ...]

    @classmethod
    def parse(cls, text: str | Iterable[str]) -> ScopeSet:
        items = text.split() if isinstance(text, str) else list(text)
        parsed = (parse_scope(item) for item in items)
        return cls(tuple(scope for scope in parsed if scope is not None))

    def texts(self) -> list[str]:
        return [scope.text for scope in self.scopes]

    def within(self, allowed: ScopeSet) -> ScopeSet:
        """The scopes of this set that some scope of ``allowed`` covers entirely."""
        kept = []
        for scope in self.scopes:
            for other in allowed.scopes:
                same_type = other.resource_type in ("*", scope.resource_type)
                if other.context == scope.context and same_type and scope.actions <= other.actions:
                    kept.append(scope)
                    break
        return ScopeSet(tuple(kept))
