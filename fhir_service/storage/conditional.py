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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from fhir_service.search.registry import Registry
from fhir_service.storage.engine import driver_execute
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


def _lateral_lookup(
    table: sa.Table, columns: Sequence[str], key: str, *where: Any
) -> sa.Select[Any]:
    """PostgreSQL: ``columns`` of the rows of ``table`` meeting ``where`` whose ``key``
    column equals one of the bound array ``values``.

    Without planner statistics (a database never analyzed, autovacuum off) PostgreSQL
    may plan ``key IN (...)`` as a read of every index entry of the leading equality
    columns, filtered on the list, a cost that grows with the table. Here the values are
    unnested and each joined LATERAL to a lookup of its own (``OFFSET 0`` keeps the
    planner from flattening it back into one scan), so every plan is one index probe
    per value whatever the statistics say.
    """
    unnested = (
        sa.func.unnest(sa.bindparam("values", type_=postgresql.ARRAY(sa.Text)))
        .table_valued("value")
        .render_derived(name="wanted")
    )
    cols = [table.c[name] for name in columns]
    probe = (
        sa.select(*cols).where(*where, table.c[key] == unnested.c.value).offset(0).lateral("found")
    )
    return (
        sa.select(*[probe.c[name] for name in columns]).select_from(unnested).join(probe, sa.true())
    )


@dataclass(frozen=True)
class _Lookup:
    """Rows of a table by resource type and a list of key values, for both dialects:
    ``postgresql`` (parameters ``type`` and ``values``, ``_lateral_lookup``) and
    ``sqlite``, one ``type = ? AND key IN ({})`` SELECT per type that ``_lookup`` joins by
    UNION ALL (SQLite plans an ``IN`` list as one index probe per value)."""

    postgresql: sa.Select[Any]
    sqlite: str


def _lookup_of(
    table: sa.Table, type_column: str, columns: Sequence[str], key: str, **fixed: str | bool
) -> _Lookup:
    """The lookup of ``columns`` of ``table`` where ``type_column`` is the type, ``key`` one
    of the values and each ``fixed`` column equals its constant."""
    where = [table.c[type_column] == sa.bindparam("type")]
    where += [table.c[name] == value for name, value in fixed.items()]
    constants = [
        f"{name} = {int(v) if isinstance(v, bool) else repr(v)}" for name, v in fixed.items()
    ]
    conditions = " AND ".join([f"{type_column} = ?", *constants, f"{key} IN ({{}})"])
    return _Lookup(
        _lateral_lookup(table, columns, key, *where),
        f"SELECT {', '.join([type_column, *columns])} FROM {table.name} WHERE {conditions}",
    )


_HOLDERS = _lookup_of(conditional_claim, "type", ["criteria_hash"], "criteria_hash")
_INDEX_ROWS_MANY = _lookup_of(
    sp_token, "res_type", ["code", "system", "res_id"], "code", param="identifier"
)
_CURRENT_MANY = _lookup_of(resource, "type", ["id"], "id", deleted=False)
_SQLITE_PARAMETERS = 2000
"""Most parameters of one SQLite lookup statement (its limit is 32,766)."""


def _lookup(
    conn: Connection, lookup: _Lookup, values: Mapping[str, Sequence[str]]
) -> list[tuple[Any, ...]]:
    """The rows of ``lookup`` for the ``values`` of each type, each row led by its type.

    SQLite: the lookups of every type in as few statements as the parameter cap allows,
    on the driver connection (a transaction's identifier claims are one statement
    instead of one per resource type, each with SQLAlchemy's per-statement work).
    PostgreSQL: one statement per type and chunk."""
    rows: list[tuple[Any, ...]] = []
    if conn.dialect.name != "sqlite":
        for rtype, wanted in values.items():
            for chunk in _chunks(wanted):
                bound = {"type": rtype, "values": list(chunk)}
                rows.extend((rtype, *row) for row in conn.execute(lookup.postgresql, bound))
        return rows
    arms: list[str] = []
    params: list[str] = []
    for rtype, wanted in values.items():
        for chunk in _chunks(wanted):
            if params and len(params) + len(chunk) + 1 > _SQLITE_PARAMETERS:
                rows += driver_execute(conn, " UNION ALL ".join(arms), params)
                arms, params = [], []
            arms.append(lookup.sqlite.format(", ".join("?" * len(chunk))))
            params += [rtype, *chunk]
    if arms:
        rows += driver_execute(conn, " UNION ALL ".join(arms), params)
    return rows


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
    hashes = {rtype: [c.key for c in group] for rtype, group in by_type.items()}
    held = {(rtype, key) for rtype, key in _lookup(conn, _HOLDERS, hashes)}
    found = _current_matches(conn, by_type)
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


def _current_matches(
    conn: Connection, by_type: dict[str, list[IdentifierClaim]]
) -> dict[tuple[str, str, str], list[str]]:
    """(type, system, value) -> sorted ids of the current resources with that identifier;
    all index rows (current or not) when more than ``LOOKUP_MAX``."""
    wanted = {(c.resource_type, c.system, c.value) for group in by_type.values() for c in group}
    values = {rtype: sorted({c.value for c in group}) for rtype, group in by_type.items()}
    rows: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for rtype, code, system, res_id in _lookup(conn, _INDEX_ROWS_MANY, values):
        if (rtype, system, code) in wanted:
            rows[(rtype, system, code)].append(res_id)
    candidates: dict[str, set[str]] = defaultdict(set)
    for (rtype, _, _), ids in rows.items():
        candidates[rtype].update(ids)
    current = set(
        _lookup(conn, _CURRENT_MANY, {rtype: sorted(ids) for rtype, ids in candidates.items()})
    )
    return {
        place: ids if len(ids) > LOOKUP_MAX else sorted(i for i in ids if (place[0], i) in current)
        for place, ids in rows.items()
    }
