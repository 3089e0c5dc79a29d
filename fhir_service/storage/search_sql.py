"""SQL for parsed searches over the index tables (https://hl7.org/fhir/R4/search.html).

Each criterion becomes ``resource.id IN (SELECT res_id FROM sp_<type> WHERE ...)``
so the database drives the search from the index; chains nest those
sub-selects, ``_has`` selects the referencing side. Pages use keyset paging:
the cursor holds the sort key and id of the last (or first) entry, so pages stay
stable while resources are added or removed.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from fhir_service.errors import InvalidRequest
from fhir_service.search.dates import MAX_INSTANT, MIN_INSTANT, search_range
from fhir_service.search.extract import normalize
from fhir_service.search.query import (
    PREFIX_PATTERN,
    Criterion,
    Include,
    SearchRequest,
    Value,
    unescape,
)
from fhir_service.search.registry import Registry
from fhir_service.search.units import canonical
from fhir_service.search.valuesets import expand
from fhir_service.storage.access import AccessScope
from fhir_service.storage.ids import utc_now
from fhir_service.storage.search_tables import (
    SEARCH_TABLES,
    sp_composite,
    sp_composite_part,
    sp_date,
    sp_number,
    sp_quantity,
    sp_reference,
    sp_string,
    sp_token,
    sp_uri,
)
from fhir_service.storage.tables import UtcDateTime, resource, resource_version
from fhir_service.storage.visibility import inside, visible_keys, visible_resources

Where = sa.ColumnElement[bool]
_TOP = "\U0010ffff"
_FLOAT_MIN = -1e300
_RANGED = frozenset({"date", "number", "quantity"})


def _prefix_range(column: Any, text: str) -> Where:
    return sa.and_(column >= text, column < text + _TOP)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _scope(table: sa.Table, types: list[str]) -> Where:
    return table.c.res_type == types[0] if len(types) == 1 else table.c.res_type.in_(types)


def _split_pipe(text: str) -> list[str]:
    parts, current, i = [], "", 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            current += text[i : i + 2]
            i += 2
            continue
        if text[i] == "|":
            parts.append(unescape(current))
            current = ""
        else:
            current += text[i]
        i += 1
    parts.append(unescape(current))
    return parts


# ----------------------------------------------------------------- per type


def _string(crit: Criterion) -> Where:
    alts = []
    for value in crit.values:
        text = unescape(value.text)
        if crit.modifier == "exact":
            alts.append(sp_string.c.value_exact == text)
        elif crit.modifier == "contains":
            alts.append(sp_string.c.value_norm.like(f"%{_like_escape(normalize(text))}%", "\\"))
        else:
            alts.append(_prefix_range(sp_string.c.value_norm, normalize(text)))
    return sa.or_(*alts)


def _token_value(value: Value, system_col: Any = None, code_col: Any = None) -> Where:
    """``code``, ``system|code``, ``|code`` or ``system|`` on sp_token (or given columns)."""
    system_col = sp_token.c.system if system_col is None else system_col
    code_col = sp_token.c.code if code_col is None else code_col
    parts = _split_pipe(value.text)
    if len(parts) == 1:
        return code_col == parts[0]
    system, code = parts[0], "|".join(parts[1:])
    if system == "":
        return sa.and_(code_col == code, system_col.is_(None))
    if code == "":
        return system_col == system
    return sa.and_(system_col == system, code_col == code)


def _token(crit: Criterion, registry: Registry) -> Where:
    if crit.modifier == "text":
        return sa.or_(
            *(_prefix_range(sp_token.c.text_norm, normalize(unescape(v.text))) for v in crit.values)
        )
    if crit.modifier in ("in", "not-in"):
        if registry.definitions is None:
            raise InvalidRequest("No ValueSets are available for :in", expression=crit.name)
        alts = []
        for value in crit.values:
            for system, codes in expand(
                registry.definitions, unescape(value.text), crit.name
            ).items():
                # Elements of type code carry no system: their codes match by value.
                system_match = sa.or_(sp_token.c.system == system, sp_token.c.system.is_(None))
                alts.append(sa.and_(system_match, sp_token.c.code.in_(codes)))
        return sa.or_(*alts) if alts else sa.false()
    return sa.or_(*(_token_value(v) for v in crit.values))


def _reference(crit: Criterion, ctx: _Context) -> Where:
    if crit.chains:
        return sa.or_(
            *(
                sa.and_(
                    sp_reference.c.target_type == target,
                    sp_reference.c.target_id.in_(ctx.visible_ids([target], nested)),
                )
                for target, nested in crit.chains
            )
        )
    alts = []
    for value in crit.values:
        text = unescape(value.text)
        if "://" in text or text.startswith("urn:"):
            alts.append(sp_reference.c.url == text)
            continue
        path = text.split("/_history/")[0].split("/")
        if len(path) == 2:
            rtype, rid = path
            if crit.target_type is not None and rtype != crit.target_type:
                alts.append(sa.false())
                continue
            alts.append(
                sa.and_(sp_reference.c.target_type == rtype, sp_reference.c.target_id == rid)
            )
        elif len(path) == 1:
            clause = sp_reference.c.target_id == text
            if crit.target_type is not None:
                clause = sa.and_(clause, sp_reference.c.target_type == crit.target_type)
            alts.append(clause)
        else:
            alts.append(sp_reference.c.url == text)
    return sa.or_(*alts)


def _approx_delta(low: datetime) -> timedelta:
    distance = abs(utc_now() - low)
    return max(distance / 10, timedelta(days=1))


def _clamp(moment: datetime) -> datetime:
    return min(max(moment, MIN_INSTANT), MAX_INSTANT)


def _date_match(low: Any, high: Any, value: Value, name: str) -> Where:
    """Range comparison of one date value with a prefix (https://hl7.org/fhir/R4/search.html#prefix)."""
    found = search_range(value.text, name)
    s_low, s_high = found.low, found.high
    eq = sa.and_(low >= s_low, high <= s_high)
    prefix = value.prefix
    if prefix == "eq":
        return eq
    if prefix == "ne":
        return sa.not_(eq)
    if prefix == "gt":
        return high > s_high
    if prefix == "lt":
        return low < s_low
    if prefix == "ge":
        return sa.or_(high > s_high, eq)
    if prefix == "le":
        return sa.or_(low < s_low, eq)
    if prefix == "sa":
        return low >= s_high
    if prefix == "eb":
        return high <= s_low
    try:
        delta = _approx_delta(s_low)
        wide_low, wide_high = _clamp(s_low - delta), _clamp(s_high + delta)
    except OverflowError:
        wide_low, wide_high = MIN_INSTANT, MAX_INSTANT
    return sa.and_(low < wide_high, high > wide_low)


def _date(crit: Criterion) -> Where:
    return sa.or_(*(_date_match(sp_date.c.low, sp_date.c.high, v, crit.name) for v in crit.values))


def _decimal(text: str, name: str) -> Decimal:
    try:
        number = Decimal(text)
    except (InvalidOperation, ValueError):
        number = Decimal("NaN")
    if not number.is_finite() or abs(number) > Decimal("1e300"):
        raise InvalidRequest(f"'{text[:40]}' is not a number for '{name}'", expression=name)
    return number


def _ordered(column: Any, prefix: str, number: Decimal, factor: float = 1.0) -> Where:
    """Number comparison with the implicit precision range of ``number`` for eq/ne."""
    exponent = number.as_tuple().exponent
    half = 0.5 * 10 ** (exponent if isinstance(exponent, int) else 0) * factor
    value = float(number) * factor
    eq = sa.and_(column >= value - half, column < value + half)
    if prefix == "eq":
        return eq
    if prefix == "ne":
        return sa.not_(eq)
    if prefix in ("gt", "sa"):
        return column > value
    if prefix in ("lt", "eb"):
        return column < value
    if prefix == "ge":
        return column >= value
    if prefix == "le":
        return column <= value
    bounds = sorted((value * 0.9, value * 1.1))
    return sa.and_(column >= bounds[0], column <= bounds[1])


def _number(crit: Criterion) -> Where:
    return sa.or_(
        *(_ordered(sp_number.c.value, v.prefix, _decimal(v.text, crit.name)) for v in crit.values)
    )


def _quantity_match(columns: tuple[Any, Any, Any, Any, Any], value: Value, name: str) -> Where:
    """One quantity value on (value, system, code, canonical value, canonical code) columns."""
    value_col, system_col, code_col, canon_col, canon_code_col = columns
    parts = _split_pipe(value.text)
    if len(parts) > 3:
        raise InvalidRequest(f"'{value.text[:60]}' is no quantity", expression=name)
    number = _decimal(parts[0], name)
    system = parts[1] if len(parts) > 1 and parts[1] else None
    code = parts[2] if len(parts) > 2 and parts[2] else None
    converted = canonical(1.0, system, code)
    if converted is not None:
        factor, unit = converted
        return sa.and_(canon_code_col == unit, _ordered(canon_col, value.prefix, number, factor))
    clauses = [_ordered(value_col, value.prefix, number)]
    if code is not None:
        clauses.append(code_col == code)
    if system is not None:
        clauses.append(system_col == system)
    return sa.and_(*clauses)


_QUANTITY_COLUMNS = (
    sp_quantity.c.value,
    sp_quantity.c.system,
    sp_quantity.c.code,
    sp_quantity.c.canon_value,
    sp_quantity.c.canon_code,
)


def _quantity(crit: Criterion) -> Where:
    return sa.or_(*(_quantity_match(_QUANTITY_COLUMNS, v, crit.name) for v in crit.values))


def _split_dollar(text: str) -> list[str]:
    parts, current, i = [], "", 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            current += text[i : i + 2]
            i += 2
            continue
        if text[i] == "$":
            parts.append(current)
            current = ""
        else:
            current += text[i]
        i += 1
    parts.append(current)
    return parts


def _part_match(kind: str, columns: Any, text: str, name: str) -> Where:
    """One component value (with its prefix for ordered types) on an sp_composite_part row."""
    prefix = "eq"
    if kind in _RANGED and (m := PREFIX_PATTERN.match(text)):
        prefix, text = m.group(1), text[2:]
    value = Value(prefix, text)
    if kind == "token":
        return _token_value(value, columns.system, columns.code)
    if kind == "reference":
        path = unescape(text).split("/")
        match = columns.code == path[-1]
        return sa.and_(match, columns.system == path[-2]) if len(path) >= 2 else match
    if kind == "quantity":
        quantity = (columns.value, columns.system, columns.code, columns.canon, columns.canon_code)
        return _quantity_match(quantity, value, name)
    if kind == "number":
        return _ordered(columns.value, prefix, _decimal(text, name))
    if kind == "date":
        return _date_match(columns.low, columns.high, value, name)
    if kind == "uri":
        return columns.code == unescape(text)
    return _prefix_range(columns.text, normalize(unescape(text)))


def _composite_parts(crit: Criterion) -> Where:
    """``a$b$c...`` on a composite indexed one row per component: component 0 on the
    driving row, each further one an EXISTS on the row of the same combination
    (https://hl7.org/fhir/R4/search.html#composite)."""
    assert crit.param is not None
    components = crit.param.components
    first = sp_composite_part
    alts = []
    for value in crit.values:
        parts = _split_dollar(value.text)
        if len(parts) != len(components) or not all(parts):
            form = "$".join("abcdefgh"[: len(components)])
            raise InvalidRequest(
                f"'{value.text[:80]}' is not a composite value {form}", expression=crit.name
            )
        clauses = [first.c.part == 0, _part_match(components[0].type, first.c, parts[0], crit.name)]
        for number, (component, text) in enumerate(zip(components, parts, strict=True)):
            if number == 0:
                continue
            other = sp_composite_part.alias(f"part{number}")
            clauses.append(
                sa.select(other.c.row_no)
                .where(
                    other.c.res_type == first.c.res_type,
                    other.c.res_id == first.c.res_id,
                    other.c.param == first.c.param,
                    other.c.row_no == first.c.row_no,
                    other.c.part == number,
                    _part_match(component.type, other.c, text, crit.name),
                )
                .exists()
            )
        alts.append(sa.and_(*clauses))
    return sa.or_(*alts)


def _composite(crit: Criterion) -> Where:
    """``a$b`` on the two components (https://hl7.org/fhir/R4/search.html#composite)."""
    assert crit.param is not None
    if not crit.param.pair:
        return _composite_parts(crit)
    first, second = crit.param.components
    t = sp_composite.c
    alts = []
    for value in crit.values:
        parts = _split_dollar(value.text)
        if len(parts) != 2 or not all(parts):
            raise InvalidRequest(
                f"'{value.text[:80]}' is not a composite value a$b", expression=crit.name
            )
        head, tail = parts
        if first.type == "reference":
            path = unescape(head).split("/")
            a = t.a_code == path[-1]
            if len(path) >= 2:
                a = sa.and_(a, t.a_system == path[-2])
        else:
            a = _token_value(Value("eq", head), t.a_system, t.a_code)
        prefix, text = "eq", tail
        if second.type in ("quantity", "date") and (m := PREFIX_PATTERN.match(tail)):
            prefix, text = m.group(1), tail[2:]
        b_value = Value(prefix, text)
        if second.type == "token":
            b = _token_value(b_value, t.b_system, t.b_code)
        elif second.type == "quantity":
            columns = (t.b_value, t.b_system, t.b_code, t.b_canon, t.b_canon_code)
            b = _quantity_match(columns, b_value, crit.name)
        elif second.type == "date":
            b = _date_match(t.b_low, t.b_high, b_value, crit.name)
        else:
            b = _prefix_range(t.b_text, normalize(unescape(text)))
        alts.append(sa.and_(a, b))
    return sa.or_(*alts)


def _uri(crit: Criterion) -> Where:
    alts = []
    for value in crit.values:
        text = unescape(value.text)
        if crit.modifier == "below":
            alts.append(_prefix_range(sp_uri.c.value, text))
        elif crit.modifier == "above":
            pieces = text.split("/")
            prefixes = {"/".join(pieces[:i]) for i in range(3, len(pieces) + 1)} | {text}
            alts.append(sp_uri.c.value.in_(prefixes))
        else:
            alts.append(sp_uri.c.value == text)
    return sa.or_(*alts)


# ------------------------------------------------------------ criteria -> SQL


_LOOKUP_MAX = 1000
"""Most driver ids a ``lookup`` query probes as a list; more fall back to a subquery."""


@dataclass
class _Context:
    registry: Registry
    scope: AccessScope
    dialect: str = "sqlite"
    lookup: Connection | None = None

    def visible_ids(self, types: list[str], crit: Criterion) -> sa.Select[Any]:
        """``ids`` of resources the scope may search: what a chain or ``_has`` reaches
        through must lie inside the scope as much as what the search returns."""
        return visible_keys(self.scope, types, self.ids(types, crit))

    def rows(self, types: list[str], crit: Criterion) -> tuple[sa.Table, Where]:
        """The index table of the criterion and the WHERE selecting its matching rows."""
        param = crit.param
        assert param is not None
        if param.type == "reference" and crit.modifier == "identifier":
            table = sp_token
            where = sa.or_(*(_token_value(v) for v in crit.values))
            return table, sa.and_(
                _scope(table, types), table.c.param == f"{param.code}:identifier", where
            )
        if crit.modifier == "of-type":
            alts = []
            for value in crit.values:
                parts = _split_pipe(value.text)
                if len(parts) != 3 or not all(parts):
                    raise InvalidRequest(
                        f"':of-type' takes system|code|value, not '{value.text[:80]}'",
                        expression=crit.name,
                    )
                alts.append(
                    sa.and_(
                        sp_token.c.system == parts[0], sp_token.c.code == f"{parts[1]}|{parts[2]}"
                    )
                )
            where = sa.and_(_scope(sp_token, types), sp_token.c.param == f"{param.code}:of-type")
            return sp_token, sa.and_(where, sa.or_(*alts))
        table = SEARCH_TABLES[param.type]
        if param.type == "composite" and not param.pair:
            table = sp_composite_part
        scope = sa.and_(_scope(table, types), table.c.param == param.code)
        if crit.modifier == "missing":
            return table, scope
        kind = param.type
        if kind == "string":
            where = _string(crit)
        elif kind == "token":
            where = _token(crit, self.registry)
        elif kind == "reference":
            where = _reference(crit, self)
        elif kind == "date":
            where = _date(crit)
        elif kind == "number":
            where = _number(crit)
        elif kind == "quantity":
            where = _quantity(crit)
        elif kind == "composite":
            where = _composite(crit)
        else:
            where = _uri(crit)
        return table, sa.and_(scope, where)

    def ids(self, types: list[str], crit: Criterion) -> sa.Select[Any]:
        """SELECT of the ids (single type) or (type, id) pairs matching ``crit``."""
        if crit.has is not None:
            source, ref_code, nested = crit.has
            inner = self.visible_ids([source], nested)
            where = sa.and_(
                sp_reference.c.res_type == source,
                sp_reference.c.param == ref_code,
                _scope_target(types),
                sp_reference.c.res_id.in_(inner),
            )
            if len(types) == 1:
                return sa.select(sp_reference.c.target_id).where(where)
            return sa.select(sp_reference.c.target_type, sp_reference.c.target_id).where(where)
        if crit.in_list:
            where = sa.and_(
                sp_reference.c.res_type == "List",
                sp_reference.c.param == "item",
                sp_reference.c.res_id.in_(
                    visible_keys(
                        self.scope,
                        ["List"],
                        sa.select(resource.c.id).where(
                            resource.c.type == "List",
                            resource.c.id.in_([unescape(v.text) for v in crit.values]),
                        ),
                    )
                ),
                _scope_target(types),
            )
            if len(types) == 1:
                return sa.select(sp_reference.c.target_id).where(where)
            return sa.select(sp_reference.c.target_type, sp_reference.c.target_id).where(where)
        if crit.param is not None and crit.param.code == "_id" and crit.modifier is None:
            ids = [unescape(v.text) for v in crit.values]
            where = sa.and_(_type_filter(types), resource.c.id.in_(ids))
            if len(types) == 1:
                return sa.select(resource.c.id).where(where)
            return sa.select(resource.c.type, resource.c.id).where(where)
        table, where = self.rows(types, crit)
        if len(types) == 1:
            return sa.select(table.c.res_id).where(where)
        return sa.select(table.c.res_type, table.c.res_id).where(where)

    def condition(self, types: list[str], crit: Criterion, drive: bool = True) -> Where:
        """The WHERE clause on ``resource`` of one top-level criterion.

        The criterion that ``drive``s is an ``IN (SELECT ...)`` the database iterates
        to find candidates; the others are probed per candidate with a correlated
        EXISTS on the (type, id) index, so their size does not matter.
        """
        key: Any = resource.c.id if len(types) == 1 else sa.tuple_(resource.c.type, resource.c.id)
        if crit.modifier == "missing":
            present = self.ids(types, crit)
            return key.notin_(present) if crit.values[0].text == "true" else key.in_(present)
        if crit.modifier in ("not", "not-in"):
            return key.notin_(self.ids(types, crit))
        param = crit.param
        probeable = (
            param is not None
            and crit.has is None
            and not crit.in_list
            and (param.code != "_id" or crit.modifier is not None)
        )
        if probeable and (not drive or (param is not None and param.type in _RANGED)):
            table, where = self.rows(types, crit)
            return (
                sa.select(table.c.res_id)
                .where(where, table.c.res_type == resource.c.type, table.c.res_id == resource.c.id)
                .exists()
            )
        ids = self.ids(types, crit)
        if drive and self.lookup is not None:
            # Few matches expected (conditional interactions): fetch the driver's ids
            # first, then probe the primary key with them, whatever the table statistics
            # say (on a fresh PostgreSQL database there are none, and the planner would
            # scan every resource of the type for each lookup).
            rows = list(self.lookup.execute(ids.limit(_LOOKUP_MAX + 1)))
            if len(rows) <= _LOOKUP_MAX:
                return key.in_([row[0] if len(types) == 1 else tuple(row) for row in rows])
        if drive and self.dialect == "postgresql":
            if len(types) == 1:
                # The driver's ids as one array, computed once (an InitPlan), then looked
                # up on the primary key: ``id = ANY(ARRAY(SELECT ...))``. Without table
                # statistics (a new database) an ``IN (SELECT ...)`` may become a nested
                # loop that rescans the matches for every resource of the type.
                return resource.c.id == sa.any_(sa.func.array(ids.scalar_subquery()))
            # Evaluate the driving criterion first (a materialized CTE): PostgreSQL
            # otherwise may scan the type and hash a large probed criterion.
            # Unnamed: several searches may be combined in one statement (_typeFilter).
            driver = ids.cte().prefix_with("MATERIALIZED", dialect="postgresql")
            return key.in_(sa.select(*driver.c))
        return key.in_(ids)


def _selectivity(crit: Criterion) -> int:
    """How few rows a criterion is likely to match (higher: fewer), to pick the driver."""
    param = crit.param
    if crit.modifier in ("missing", "not", "not-in") or crit.modifier == "in":
        return 0
    if crit.has is not None or crit.in_list or param is None:
        return 3
    if param.code == "_id":
        return 6
    if param.type == "reference":
        return 5 if not crit.chains else 4
    if param.type in ("token", "uri", "composite"):
        return 4 if crit.modifier is None else 2
    if param.type == "string":
        return 3
    return 1


def _scope_target(types: list[str]) -> Where:
    if len(types) == 1:
        return sp_reference.c.target_type == types[0]
    return sp_reference.c.target_type.in_(types)


def _type_filter(types: list[str]) -> Where:
    return resource.c.type == types[0] if len(types) == 1 else resource.c.type.in_(types)


# ---------------------------------------------------------------- sort, keys

_SORT_COLUMN = {
    "string": ("value_norm", ""),
    "token": ("code", ""),
    "reference": ("target_id", ""),
    "uri": ("value", ""),
    "number": ("value", _FLOAT_MIN),
    "quantity": ("value", _FLOAT_MIN),
}


@dataclass(frozen=True)
class _Key:
    expr: Any
    desc: bool
    kind: str


def _sort_keys(request: SearchRequest) -> list[_Key]:
    keys = []
    for param, desc in request.sort:
        if param.code == "_id":
            keys.append(_Key(resource.c.id, desc, "string"))
            continue
        table = SEARCH_TABLES[param.type]
        sentinel: Any
        type_: Any
        if param.type == "date":
            column = table.c.high if desc else table.c.low
            sentinel, type_ = MIN_INSTANT, UtcDateTime()
        else:
            name, sentinel = _SORT_COLUMN[param.type]
            column, type_ = table.c[name], table.c[name].type
        agg = sa.func.max(column) if desc else sa.func.min(column)
        sub = (
            sa.select(agg)
            .where(
                table.c.res_type == resource.c.type,
                table.c.res_id == resource.c.id,
                table.c.param == param.code,
            )
            .scalar_subquery()
        )
        keys.append(
            _Key(sa.func.coalesce(sub, sa.literal(sentinel, type_), type_=type_), desc, param.type)
        )
    if len(request.types) > 1:
        keys.append(_Key(resource.c.type, False, "string"))
    keys.append(_Key(resource.c.id, False, "string"))
    return keys


def encode_cursor(values: list[Any], backward: bool) -> str:
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    raw = orjson.dumps({"k": plain, "b": backward})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str, keys: list[_Key]) -> tuple[list[Any], bool]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        values = data["k"]
        backward = bool(data["b"])
        if not isinstance(values, list) or len(values) != len(keys):
            raise ValueError
        out: list[Any] = []
        for key, value in zip(keys, values, strict=True):
            if key.kind == "date":
                out.append(datetime.fromisoformat(value))
            elif key.kind in ("number", "quantity"):
                out.append(float(value))
            else:
                out.append(str(value))
        return out, backward
    except (ValueError, TypeError, KeyError, orjson.JSONDecodeError):
        raise InvalidRequest("Invalid paging cursor", expression="_cursor") from None


def _keyset(keys: list[_Key], values: list[Any], backward: bool) -> Where:
    alts = []
    for i, key in enumerate(keys):
        equal = [k.expr == v for k, v in zip(keys[:i], values[:i], strict=True)]
        after = key.desc != backward
        bound = sa.literal(values[i], UtcDateTime()) if key.kind == "date" else values[i]
        alts.append(sa.and_(*equal, key.expr < bound if after else key.expr > bound))
    return sa.or_(*alts)


# ------------------------------------------------------------------- running


@dataclass
class Page:
    """One page of matches with its paging cursors and (optional) total."""

    rows: list[Any]
    total: int | None
    next_cursor: str | None
    previous_cursor: str | None
    included: list[Any]


def _filters(request: SearchRequest, ctx: _Context, extra: list[Where]) -> list[Where]:
    driver = max(request.criteria, key=_selectivity, default=None)
    inside = visible_resources(ctx.scope, "s")
    return [
        _type_filter(request.types),
        resource.c.deleted.is_(False),
        *(ctx.condition(request.types, c, c is driver) for c in request.criteria),
        *extra,
        *([inside] if inside is not None else []),
    ]


def match_query(
    registry: Registry,
    request: SearchRequest,
    scope: AccessScope,
    dialect: str = "sqlite",
    *,
    lookup: Connection | None = None,
) -> sa.Select[Any]:
    """SELECT resource.id, resource.seq of current resources in ``scope`` matching
    ``request``, as ``run`` builds it for ``dialect``. With ``lookup`` (few matches
    expected) the driving criterion's ids are read on that connection first and the query
    probes them."""
    ctx = _Context(registry, scope, dialect, lookup)
    return sa.select(resource.c.id, resource.c.seq).where(*_filters(request, ctx, []))


def run(
    conn: Connection,
    registry: Registry,
    request: SearchRequest,
    scope: AccessScope,
    extra: list[Where] | None = None,
) -> Page:
    """The page of ``request`` inside ``scope`` (rows of resource_version plus sort keys),
    total and includes (those inside the scope too)."""
    ctx = _Context(registry, scope, conn.dialect.name)
    filters = _filters(request, ctx, extra or [])
    total = None
    if request.total != "none" or request.count == 0 or request.summary == "count":
        total = int(
            conn.execute(
                sa.select(sa.func.count()).select_from(resource).where(*filters)
            ).scalar_one()
        )
    if request.count == 0 or request.summary == "count":
        return Page([], total, None, None, [])
    keys = _sort_keys(request)
    backward = False
    page_filters = list(filters)
    if request.cursor is not None:
        values, backward = decode_cursor(request.cursor, keys)
        page_filters.append(_keyset(keys, values, backward))
    labels = [k.expr.label(f"k{i}") for i, k in enumerate(keys)]
    order = [
        (lbl.desc() if k.desc != backward else lbl.asc())
        for lbl, k in zip(labels, keys, strict=True)
    ]
    # Keys first (index-only work), then the bodies of the page alone.
    query = (
        sa.select(resource.c.seq, *labels)
        .where(*page_filters)
        .order_by(*order)
        .limit(request.count + 1)
    )
    keyed = list(conn.execute(query))
    more = len(keyed) > request.count
    keyed = keyed[: request.count]
    if backward:
        keyed.reverse()
    bodies = {
        row.seq: row
        for row in conn.execute(
            sa.select(resource_version).where(resource_version.c.seq.in_([k.seq for k in keyed]))
        )
    }
    rows = [bodies[k.seq] for k in keyed]

    def cursor(row: Any, back: bool) -> str:
        return encode_cursor([row[f"k{i}"] for i in range(len(keys))], back)

    next_cursor = previous_cursor = None
    if keyed:
        if more or backward:
            next_cursor = cursor(keyed[-1]._mapping, False)
        if (backward and more) or (not backward and request.cursor is not None):
            previous_cursor = cursor(keyed[0]._mapping, True)
    included = includes(conn, registry, rows, request, scope)
    return Page(rows, total, next_cursor, previous_cursor, included)


# ----------------------------------------------------------------- includes


def _include_params(registry: Registry, spec: Include, source: str) -> list[str] | None:
    if spec.source not in ("*", source):
        return None
    if spec.param == "*":
        return [p.code for p in registry.indexed(source) if p.type == "reference"]
    return [spec.param]


def includes(
    conn: Connection,
    registry: Registry,
    rows: list[Any],
    request: SearchRequest,
    scope: AccessScope,
) -> list[Any]:
    """Resources named by _include / _revinclude: one query per specification level."""
    seen = {(r.type, r.id) for r in rows}
    found: list[Any] = []
    current = [(r.type, r.id) for r in rows]
    first = True
    for _ in range(4):
        specs_inc = [s for s in request.includes if first or s.iterate]
        specs_rev = [s for s in request.revincludes if first or s.iterate]
        first = False
        if not current or not (specs_inc or specs_rev):
            break
        added: list[Any] = []
        if specs_inc:
            added += _forward(conn, registry, specs_inc, current, scope)
        if specs_rev:
            added += _reverse(conn, registry, specs_rev, current, scope)
        fresh = []
        for row in added:
            if (row.type, row.id) not in seen:
                seen.add((row.type, row.id))
                fresh.append(row)
        found += fresh
        current = [(r.type, r.id) for r in fresh]
    return found


def _forward(
    conn: Connection,
    registry: Registry,
    specs: list[Include],
    current: list[tuple[str, str]],
    scope: AccessScope,
) -> list[Any]:
    by_type: dict[str, list[str]] = {}
    for rtype, rid in current:
        by_type.setdefault(rtype, []).append(rid)
    alts = []
    for spec in specs:
        for source, ids in by_type.items():
            params = _include_params(registry, spec, source)
            if not params:
                continue
            clause = sa.and_(
                sp_reference.c.res_type == source,
                sp_reference.c.param.in_(params),
                sp_reference.c.res_id.in_(ids),
            )
            if spec.target:
                clause = sa.and_(clause, sp_reference.c.target_type == spec.target)
            alts.append(clause)
    if not alts:
        return []
    targets = (
        sa.select(sp_reference.c.target_type, sp_reference.c.target_id)
        .where(sa.or_(*alts), sp_reference.c.target_id.is_not(None))
        .distinct()
        .subquery()
    )
    query = (
        sa.select(resource_version)
        .select_from(
            resource.join(
                targets,
                sa.and_(
                    resource.c.type == targets.c.target_type, resource.c.id == targets.c.target_id
                ),
            ).join(resource_version, resource.c.seq == resource_version.c.seq)
        )
        .where(resource.c.deleted.is_(False), *inside(scope, "s"))
    )
    return list(conn.execute(query))


def _reverse(
    conn: Connection,
    registry: Registry,
    specs: list[Include],
    current: list[tuple[str, str]],
    scope: AccessScope,
) -> list[Any]:
    pairs = list(dict.fromkeys(current))
    alts = []
    for spec in specs:
        if spec.source == "*":
            continue
        if spec.param == "*":
            params = [p.code for p in registry.indexed(spec.source) if p.type == "reference"]
        else:
            params = [spec.param]
        alts.append(
            sa.and_(sp_reference.c.res_type == spec.source, sp_reference.c.param.in_(params))
        )
    if not alts:
        return []
    ids = list({rid for _, rid in pairs})
    types = list({rtype for rtype, _ in pairs})
    sources = (
        sa.select(sp_reference.c.res_type, sp_reference.c.res_id)
        .where(
            sa.or_(*alts),
            sp_reference.c.target_id.in_(ids),
            sp_reference.c.target_type.in_(types),
            sa.tuple_(sp_reference.c.target_type, sp_reference.c.target_id).in_(pairs),
        )
        .distinct()
        .subquery()
    )
    query = (
        sa.select(resource_version)
        .select_from(
            resource.join(
                sources,
                sa.and_(resource.c.type == sources.c.res_type, resource.c.id == sources.c.res_id),
            ).join(resource_version, resource.c.seq == resource_version.c.seq)
        )
        .where(resource.c.deleted.is_(False), *inside(scope, "s"))
    )
    return list(conn.execute(query))


# --------------------------------------------------------------- compartment


def compartment_filter(
    compartment: dict[str, tuple[str, ...]], types: list[str], patient_id: str
) -> Where:
    """Resources of ``types`` in Patient/``patient_id``'s compartment (the Patient itself too)."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for rtype in types:
        params = compartment.get(rtype)
        if params:
            groups.setdefault(params, []).append(rtype)
    alts: list[Where] = []
    if groups:
        members = sa.select(sp_reference.c.res_type, sp_reference.c.res_id).where(
            sp_reference.c.target_type == "Patient",
            sp_reference.c.target_id == patient_id,
            sa.or_(
                *(
                    sa.and_(sp_reference.c.res_type.in_(group), sp_reference.c.param.in_(params))
                    for params, group in groups.items()
                )
            ),
        )
        alts.append(sa.tuple_(resource.c.type, resource.c.id).in_(members))
    if "Patient" in types:
        alts.append(sa.and_(resource.c.type == "Patient", resource.c.id == patient_id))
    return sa.or_(*alts) if alts else sa.false()


def since_filter(types: list[str], since: datetime) -> Where:
    """Resources whose lastUpdated is at or after ``since`` (the ``_lastUpdated`` index)."""
    where = sa.and_(
        _scope(sp_date, types), sp_date.c.param == "_lastUpdated", sp_date.c.low >= since
    )
    if len(types) == 1:
        return resource.c.id.in_(sa.select(sp_date.c.res_id).where(where))
    return sa.tuple_(resource.c.type, resource.c.id).in_(
        sa.select(sp_date.c.res_type, sp_date.c.res_id).where(where)
    )
