"""The statements behind conditional interactions, built once
(https://hl7.org/fhir/R4/http.html#ccreate, https://hl7.org/fhir/R4/search.html#token).

- Claims: the ``conditional_claim`` row (type, criteria hash) read, inserted (nothing
  when it exists) and taken over; ``SqlRepository.claim_conditional`` uses them.
- Identifier lookups: conditional creates, updates and references in exchanged Bundles
  almost always name one ``identifier=system|value``. Those criteria run as two
  statements: the identifier's index rows, then the current resources with those ids by
  primary key. The answer is the one the general search gives for the same criteria;
  anything else (several parameters, modifiers, ``|code``, ``system|``, commas, escapes,
  a custom ``identifier`` parameter) goes through the general search.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from fhir_service.search.registry import Registry
from fhir_service.storage.repository import SearchParams
from fhir_service.storage.search_tables import sp_token
from fhir_service.storage.tables import conditional_claim, resource

_claim_key = (
    conditional_claim.c.type == sa.bindparam("claim_type"),
    conditional_claim.c.criteria_hash == sa.bindparam("claim_hash"),
)
CLAIM_HOLDER = sa.select(conditional_claim.c.id).where(*_claim_key)
"""The id holding a claim (parameters ``claim_type``, ``claim_hash``)."""
CLAIM_TAKEOVER = (
    sa.update(conditional_claim)
    .where(*_claim_key, conditional_claim.c.id == sa.bindparam("holder"))
    .values(id=sa.bindparam("claim_id"))
)
"""Move a stale claim from ``holder`` to ``claim_id`` (rowcount 1 when it was still held so)."""
_CLAIM_INSERT: dict[str, Any] = {
    name: dialect.insert(conditional_claim)
    .values(
        type=sa.bindparam("claim_type"),
        criteria_hash=sa.bindparam("claim_hash"),
        id=sa.bindparam("claim_id"),
    )
    .on_conflict_do_nothing()
    .returning(conditional_claim.c.id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


def claim_insert(conn: Connection) -> Any:
    """INSERT a claim (``claim_type``, ``claim_hash``, ``claim_id``), returning no row when
    one exists."""
    return _CLAIM_INSERT[conn.dialect.name]


LOOKUP_MAX = 1000
"""Most index rows the lookup takes; more go through the general search."""

_CORE_IDENTIFIER = "http://hl7.org/fhir/SearchParameter/"

_INDEX_ROWS = (
    sa.select(sp_token.c.res_id)
    .where(
        sp_token.c.res_type == sa.bindparam("type"),
        sp_token.c.param == "identifier",
        sp_token.c.system == sa.bindparam("system"),
        sp_token.c.code == sa.bindparam("code"),
    )
    .limit(LOOKUP_MAX + 1)
)
_CURRENT = (
    sa.select(resource.c.id)
    .where(
        resource.c.type == sa.bindparam("type"),
        resource.c.deleted.is_(False),
        resource.c.id.in_(sa.bindparam("ids", expanding=True)),
    )
    .order_by(resource.c.id)
)
_CURRENT_LIMITED = _CURRENT.limit(sa.bindparam("limit"))


def identifier_criteria(
    registry: Registry, resource_type: str, params: SearchParams
) -> tuple[str, str] | None:
    """(system, value) when ``params`` are exactly one core ``identifier=system|value``."""
    if len(params) != 1 or params[0][0] != "identifier":
        return None
    text = params[0][1]
    if "," in text or "\\" in text:
        return None
    system, bar, value = text.partition("|")
    if not bar or not system or not value or "|" in value:
        return None
    param = registry.get(resource_type, "identifier")
    if param is None or param.type != "token" or not param.url.startswith(_CORE_IDENTIFIER):
        return None
    return system, value


def match_identifier(
    conn: Connection, resource_type: str, system: str, value: str, limit: int | None
) -> list[str] | None:
    """Ids of current resources with this identifier, sorted; None when more than
    ``LOOKUP_MAX`` index rows match (the caller then uses the general search)."""
    ids = list(
        conn.execute(_INDEX_ROWS, {"type": resource_type, "system": system, "code": value})
        .scalars()
        .all()
    )
    if len(ids) > LOOKUP_MAX:
        return None
    if not ids:
        return []
    if limit is None:
        return list(conn.execute(_CURRENT, {"type": resource_type, "ids": ids}).scalars())
    bound = {"type": resource_type, "ids": ids, "limit": limit}
    return list(conn.execute(_CURRENT_LIMITED, bound).scalars())
