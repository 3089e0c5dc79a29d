"""An ``AccessScope`` as SQL: the WHERE clauses that keep every statement inside the scope
(https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html).

A row is visible for some interactions when a grant of reach ``all`` covers its type, or
a grant of reach ``compartment`` covers its type and the row's version lies in the
scope patient's compartment (``version_patient``). ``None`` means no restriction.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from fhir_service.storage.access import AccessScope
from fhir_service.storage.tables import resource, version_patient

Where = sa.ColumnElement[bool]


def _member(scope: AccessScope, seq: Any) -> Where:
    return seq.in_(
        sa.select(version_patient.c.seq).where(version_patient.c.patient_id == scope.patient)
    )


def visible(scope: AccessScope, type_column: Any, seq_column: Any, actions: str) -> Where | None:
    """Rows (their type and version seq columns) that one of ``actions`` may reach."""
    if scope.grants is None:
        return None
    all_types: set[str] = set()
    in_compartment: set[str] = set()
    every_type = every_compartment = False
    for grant in scope.grants:
        if not grant.actions & set(actions):
            continue
        wild = grant.resource_type == "*"
        if grant.reach == "all":
            every_type = every_type or wild
            all_types.add(grant.resource_type)
        else:
            every_compartment = every_compartment or wild
            in_compartment.add(grant.resource_type)
    if every_type:
        return None
    alternatives: list[Where] = []
    if all_types:
        alternatives.append(type_column.in_(sorted(all_types)))
    if every_compartment:
        alternatives.append(_member(scope, seq_column))
    elif in_compartment:
        alternatives.append(
            sa.and_(type_column.in_(sorted(in_compartment)), _member(scope, seq_column))
        )
    return sa.or_(*alternatives) if alternatives else sa.false()


def visible_resources(scope: AccessScope, actions: str) -> Where | None:
    """Current resources (``resource`` rows) that one of ``actions`` may reach."""
    return visible(scope, resource.c.type, resource.c.seq, actions)


def inside(scope: AccessScope, actions: str) -> list[Where]:
    """``visible_resources`` as a list of WHERE clauses (empty: no restriction)."""
    where = visible_resources(scope, actions)
    return [] if where is None else [where]


def visible_keys(scope: AccessScope, types: list[str], keys: sa.Select[Any]) -> sa.Select[Any]:
    """``keys`` (ids of one type, or (type, id) pairs) narrowed to the current resources
    the scope may search; unchanged when the scope reaches all of them."""
    where = visible_resources(scope, "s")
    if where is None:
        return keys
    if len(types) == 1:
        return sa.select(resource.c.id).where(
            resource.c.type == types[0], resource.c.id.in_(keys), where
        )
    return sa.select(resource.c.type, resource.c.id).where(
        resource.c.type.in_(types), sa.tuple_(resource.c.type, resource.c.id).in_(keys), where
    )
