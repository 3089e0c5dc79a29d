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
- Claims of many identifiers at once (``claim_identifiers``): a transaction's conditional
  creates read their claims, their matches and insert their new claims in a few
  statements per resource type instead of three per entry.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

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


def _per_dialect(
    table: sa.Table, columns: Sequence[str], key: str, values: str, *where: Any
) -> dict[str, sa.Select[Any]]:
    """``columns`` of the rows of ``table`` meeting ``where`` whose ``key`` column equals one
    of the bound list ``values``, for each dialect.

    SQLite plans ``key IN (...)`` as one index lookup per value. PostgreSQL may not: without
    planner statistics (a database never analyzed, autovacuum off) it reads every index
    entry of the leading equality columns and filters on the list, a cost that grows with
    the table. There the values are unnested and each joined LATERAL to a lookup of its own
    (``OFFSET 0`` keeps the planner from flattening it back into one scan), so every plan
    is one index probe per value whatever the statistics say.
    """
    cols = [table.c[name] for name in columns]
    unnested = (
        sa.func.unnest(sa.bindparam(values, type_=postgresql.ARRAY(sa.Text)))
        .table_valued("value")
        .render_derived(name="wanted")
    )
    probe = (
        sa.select(*cols).where(*where, table.c[key] == unnested.c.value).offset(0).lateral("found")
    )
    return {
        "sqlite": sa.select(*cols).where(
            *where, table.c[key].in_(sa.bindparam(values, expanding=True))
        ),
        "postgresql": sa.select(*[probe.c[name] for name in columns])
        .select_from(unnested)
        .join(probe, sa.true()),
    }


_HOLDERS = _per_dialect(
    conditional_claim,
    ["criteria_hash"],
    "criteria_hash",
    "hashes",
    conditional_claim.c.type == sa.bindparam("type"),
)
_INDEX_ROWS_MANY = _per_dialect(
    sp_token,
    ["code", "system", "res_id"],
    "code",
    "codes",
    sp_token.c.res_type == sa.bindparam("type"),
    sp_token.c.param == "identifier",
)
_CURRENT_MANY = _per_dialect(
    resource,
    ["id"],
    "id",
    "ids",
    resource.c.type == sa.bindparam("type"),
    resource.c.deleted.is_(False),
)
_CLAIM_INSERT_MANY: dict[str, Any] = {
    name: dialect.insert(conditional_claim)
    .on_conflict_do_nothing()
    .returning(conditional_claim.c.criteria_hash)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
_CHUNK = 500
"""Most values bound to one IN list or multi-row INSERT."""

_T = TypeVar("_T")


def _chunks(items: Sequence[_T]) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


@dataclass(frozen=True)
class IdentifierClaim:
    """One conditional create on ``identifier=system|value``: its claim key and the id it
    would create."""

    resource_type: str
    system: str
    value: str
    key: str
    id: str


@dataclass(frozen=True)
class ClaimOutcome:
    """``match`` is the id of the one current resource with the identifier; ``None`` when
    the claim was inserted for the requested id."""

    match: str | None


def claim_identifiers(
    conn: Connection, claims: Sequence[IdentifierClaim]
) -> dict[str, ClaimOutcome]:
    """Resolve many identifier conditional creates (distinct keys), by key.

    Per key the order of ``SqlRepository.claim_conditional`` holds: the claim is read
    before the match, the claim inserted only when neither exists. Keys left out of the
    answer (a held claim without a match, several matches, too many index rows, a claim
    inserted concurrently) need the one-by-one path. Claims are inserted in key order, so
    two transactions claiming overlapping keys lock them in the same order.
    """
    by_type: dict[str, list[IdentifierClaim]] = defaultdict(list)
    for claim in claims:
        by_type[claim.resource_type].append(claim)
    held = {(t, key) for t, group in by_type.items() for key in _held(conn, t, group)}
    found: dict[tuple[str, str, str], list[str]] = {}
    for rtype, group in by_type.items():
        found.update(_current_matches(conn, rtype, group))
    outcomes: dict[str, ClaimOutcome] = {}
    free = []
    for claim in claims:
        ids = found.get((claim.resource_type, claim.system, claim.value), [])
        if len(ids) == 1:
            outcomes[claim.key] = ClaimOutcome(ids[0])
        elif not ids and (claim.resource_type, claim.key) not in held:
            free.append(claim)
    free.sort(key=lambda c: (c.resource_type, c.key))
    insert = _CLAIM_INSERT_MANY[conn.dialect.name]
    for chunk in _chunks(free):
        rows = [{"type": c.resource_type, "criteria_hash": c.key, "id": c.id} for c in chunk]
        inserted = set(conn.execute(insert, rows).scalars())
        outcomes.update((c.key, ClaimOutcome(None)) for c in chunk if c.key in inserted)
    return outcomes


def _held(conn: Connection, resource_type: str, claims: Sequence[IdentifierClaim]) -> set[str]:
    """The keys among ``claims`` (all of one type) that have a claim row."""
    held: set[str] = set()
    for chunk in _chunks(claims):
        hashes = [c.key for c in chunk]
        held.update(
            conn.execute(
                _HOLDERS[conn.dialect.name], {"type": resource_type, "hashes": hashes}
            ).scalars()
        )
    return held


def _current_matches(
    conn: Connection, resource_type: str, claims: Sequence[IdentifierClaim]
) -> dict[tuple[str, str, str], list[str]]:
    """(type, system, value) -> sorted ids of the current resources with that identifier;
    all index rows (current or not) when more than ``LOOKUP_MAX``."""
    wanted = {(c.system, c.value) for c in claims}
    rows: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    values = sorted({c.value for c in claims})
    for chunk in _chunks(values):
        bound = {"type": resource_type, "codes": list(chunk)}
        for code, system, res_id in conn.execute(_INDEX_ROWS_MANY[conn.dialect.name], bound):
            if (system, code) in wanted:
                rows[(resource_type, system, code)].append(res_id)
    candidates = sorted({i for ids in rows.values() for i in ids})
    current: set[str] = set()
    for ids in _chunks(candidates):
        bound = {"type": resource_type, "ids": list(ids)}
        current.update(conn.execute(_CURRENT_MANY[conn.dialect.name], bound).scalars())
    return {
        place: ids if len(ids) > LOOKUP_MAX else sorted(i for i in ids if i in current)
        for place, ids in rows.items()
    }
