"""Parsing a search request into criteria and result parameters
(https://hl7.org/fhir/R4/search.html).

Names carry modifiers (``name:exact``), chains (``subject:Patient.name``) and
reverse chains (``_has:Observation:patient:code``); values are comma-separated
alternatives (``\\,`` escapes a comma) with prefixes on ordered types. Unknown or
unsupported parameters are collected in ``ignored`` (lenient handling) or raise
InvalidRequest (``strict``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from fhir_service.errors import InvalidRequest
from fhir_service.fhir.models import is_resource_type
from fhir_service.search.registry import Registry, SearchParam

MAX_VALUE_LENGTH = 2048
MAX_ALTERNATIVES = 100
MAX_CHAIN_DEPTH = 4
MAX_INCLUDE_ITERATIONS = 4
PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
PREFIX_PATTERN = re.compile(r"(eq|ne|gt|lt|ge|le|sa|eb|ap)(?=[0-9-])")
_PREFIX = PREFIX_PATTERN
_ORDERED = frozenset({"date", "number", "quantity"})
_MODIFIERS = {
    "string": {"exact", "contains", "missing"},
    "token": {"text", "not", "in", "not-in", "missing", "of-type"},
    "reference": {"identifier", "missing"},
    "date": {"missing"},
    "number": {"missing"},
    "quantity": {"missing"},
    "uri": {"below", "above", "missing"},
    "composite": {"missing"},
}
RESULT_PARAMS = frozenset(
    {
        "_count",
        "_sort",
        "_total",
        "_summary",
        "_elements",
        "_include",
        "_revinclude",
        "_format",
        "_pretty",
        "_cursor",
        "_type",
        "_contained",
        "_containedType",
    }
)
SUMMARY_MODES = frozenset({"true", "false", "count", "data", "text"})
TOTAL_MODES = frozenset({"none", "estimate", "accurate"})


class Unsupported(InvalidRequest):
    """A parameter the server does not know or support (ignored when handling is lenient)."""


@dataclass(frozen=True)
class Value:
    """One alternative of a parameter value: its prefix (ordered types) and text."""

    prefix: str
    text: str


@dataclass
class Criterion:
    """One filter: a parameter of ``resource_type`` with its modifier and alternatives."""

    resource_type: str
    name: str
    param: SearchParam | None
    modifier: str | None = None
    values: list[Value] = field(default_factory=list)
    target_type: str | None = None
    chain: Criterion | None = None
    has: tuple[str, str, Criterion] | None = None
    chains: list[tuple[str, Criterion]] = field(default_factory=list)
    in_list: bool = False
    """``_list``: the values are List ids whose items match."""
    """Chained criteria per target type (several when the reference has several targets)."""
    """Reverse chain: (source type, its reference parameter, criterion on the source)."""


@dataclass(frozen=True)
class Include:
    """``_include``/``_revinclude`` = Source:param[:Target] (param ``*`` means every one)."""

    source: str
    param: str
    target: str | None
    iterate: bool


@dataclass
class SearchRequest:
    """A parsed search: filters ANDed, and how to shape the result."""

    types: list[str]
    criteria: list[Criterion] = field(default_factory=list)
    sort: list[tuple[SearchParam, bool]] = field(default_factory=list)
    count: int = 50
    total: str = "accurate"
    summary: str | None = None
    elements: tuple[str, ...] = ()
    includes: list[Include] = field(default_factory=list)
    revincludes: list[Include] = field(default_factory=list)
    cursor: str | None = None
    ignored: list[str] = field(default_factory=list)


def split_values(text: str) -> list[str]:
    """Comma-separated alternatives; ``\\,``, ``\\|``, ``\\$`` and ``\\\\`` are escapes."""
    out, current, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if ch == ",":
            out.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    out.append("".join(current))
    return out


def unescape(text: str) -> str:
    return re.sub(r"\\([\\,|$])", r"\1", text)


def _values(param: SearchParam | None, raw: str, name: str) -> list[Value]:
    if len(raw) > MAX_VALUE_LENGTH:
        raise InvalidRequest(f"The value of '{name}' is too long", expression=name)
    parts = split_values(raw)
    if len(parts) > MAX_ALTERNATIVES:
        raise InvalidRequest(f"Too many alternatives for '{name}'", expression=name)
    values = []
    for part in parts:
        if part == "":
            raise InvalidRequest(f"'{name}' has an empty value", expression=name)
        prefix = "eq"
        if param is not None and param.type in _ORDERED and (m := _PREFIX.match(part)):
            prefix, part = m.group(1), part[2:]
        values.append(Value(prefix, part))
    return values


class Parser:
    """Parses the query pairs of one request against the registry."""

    def __init__(self, registry: Registry, *, strict: bool) -> None:
        self.registry = registry
        self.strict = strict

    def criterion(self, resource_type: str, name: str, raw: str, depth: int = 0) -> Criterion:
        if depth > MAX_CHAIN_DEPTH:
            raise InvalidRequest(f"Chain '{name}' is too deep", expression=name)
        if name.startswith("_has:"):
            return self._has(resource_type, name, raw, depth)
        if name == "_list":
            # https://hl7.org/fhir/R4/search.html#list: the items of List/[id].
            return Criterion(
                resource_type, name, None, values=_values(None, raw, name), in_list=True
            )
        head, dot, rest = name.partition(".")
        code, _, modifier_text = head.partition(":")
        modifier = modifier_text or None
        param = self.registry.get(resource_type, code)
        if param is None:
            raise Unsupported(
                f"Unknown search parameter '{code}' for {resource_type}", expression=name
            )
        if dot:
            return self._chain(resource_type, name, param, modifier, rest, raw, depth)
        if param.type not in _MODIFIERS or not param.indexed:
            raise Unsupported(
                f"Search parameter '{code}' ({param.type}) is not supported", expression=name
            )
        criterion = Criterion(resource_type, name, param, modifier)
        if modifier is not None and modifier not in _MODIFIERS[param.type]:
            if param.type == "reference" and is_resource_type(modifier):
                criterion.modifier, criterion.target_type = None, modifier
            else:
                raise InvalidRequest(
                    f"Modifier ':{modifier}' is not supported on '{code}' ({param.type})",
                    expression=name,
                )
        if modifier == "missing":
            if raw not in ("true", "false"):
                raise InvalidRequest(f"':missing' takes true or false on '{code}'", expression=name)
            criterion.values = [Value("eq", raw)]
        else:
            criterion.values = _values(param, raw, name)
        return criterion

    def _chain(
        self,
        resource_type: str,
        name: str,
        param: SearchParam,
        modifier: str | None,
        rest: str,
        raw: str,
        depth: int,
    ) -> Criterion:
        if param.type != "reference":
            raise InvalidRequest(
                f"'{param.code}' is not a reference and cannot chain", expression=name
            )
        if modifier is not None:
            targets = [modifier]
            if not is_resource_type(modifier) or (param.targets and modifier not in param.targets):
                raise InvalidRequest(
                    f"'{modifier}' is not a target of '{param.code}'", expression=name
                )
        else:
            targets = list(param.targets)
        chains: list[tuple[str, Criterion]] = []
        for target in targets:
            try:
                chains.append((target, self.criterion(target, rest, raw, depth + 1)))
            except Unsupported:
                if len(targets) == 1:
                    raise
        if not chains:
            raise Unsupported(f"No target of '{param.code}' has '{rest}'", expression=name)
        target, nested = chains[0]
        return Criterion(resource_type, name, param, None, [], target, nested, chains=chains)

    def _has(self, resource_type: str, name: str, raw: str, depth: int) -> Criterion:
        parts = name.split(":", 3)
        if len(parts) != 4 or not all(parts[1:]):
            raise InvalidRequest(f"'{name}' is not _has:Type:reference:parameter", expression=name)
        _, source, ref_code, rest = parts
        if not is_resource_type(source):
            raise Unsupported(f"'{source}' in '{name}' is not a resource type", expression=name)
        ref_param = self.registry.get(source, ref_code)
        if ref_param is None or ref_param.type != "reference":
            raise Unsupported(
                f"'{ref_code}' is no reference parameter of {source}", expression=name
            )
        nested = self.criterion(source, rest, raw, depth + 1)
        return Criterion(resource_type, name, None, has=(source, ref_code, nested))

    def include(self, value: str, reverse: bool, iterate: bool) -> Include:
        parts = value.split(":")
        name = "_revinclude" if reverse else "_include"
        if value == "*":
            return Include("*", "*", None, iterate)
        if len(parts) not in (2, 3) or not is_resource_type(parts[0]):
            raise InvalidRequest(
                f"{name}='{value[:80]}' is not Type:param[:Target]", expression=name
            )
        source, code = parts[0], parts[1]
        target = parts[2] if len(parts) == 3 else None
        if code != "*":
            param = self.registry.get(source, code)
            if param is None or param.type != "reference":
                raise Unsupported(
                    f"{name}: '{code}' is no reference parameter of {source}", expression=name
                )
        if target is not None and not is_resource_type(target):
            raise InvalidRequest(f"{name}: '{target}' is not a resource type", expression=name)
        return Include(source, code, target, iterate)


def _sort(registry: Registry, types: list[str], text: str) -> list[tuple[SearchParam, bool]]:
    keys = []
    for item in text.split(","):
        item = item.strip()
        desc = item.startswith("-")
        code = item.lstrip("-")
        param = registry.get(types[0], code) if types else None
        if param is None or not param.indexed or param.type == "composite":
            raise InvalidRequest(f"Cannot sort by '{code}'", expression="_sort")
        keys.append((param, desc))
    return keys


def _count(value: str, max_count: int) -> int:
    if not (value.isascii() and value.isdigit()):  # int() also takes other scripts' digits
        raise InvalidRequest(
            f"_count must be a non-negative integer, not '{value[:20]}'", expression="_count"
        )
    return min(int(value), max_count)


def parse_search(
    registry: Registry,
    types: list[str],
    pairs: list[tuple[str, str]],
    *,
    strict: bool = False,
    default_count: int = 50,
    max_count: int = 1000,
) -> SearchRequest:
    """The SearchRequest of query ``pairs`` on ``types`` (one type, or several for _type)."""
    parser = Parser(registry, strict=strict)
    request = SearchRequest(types=types, count=default_count)
    for name, raw in pairs:
        base = name.split(":")[0]
        try:
            if base in RESULT_PARAMS:
                _result_param(request, registry, parser, name, raw, max_count)
            elif len(types) == 1:
                request.criteria.append(parser.criterion(types[0], name, raw))
            else:
                request.criteria.append(_common_criterion(parser, types, name, raw))
        except Unsupported as exc:
            if strict:
                raise InvalidRequest(exc.diagnostics, expression=exc.expression) from None
            request.ignored.append(exc.diagnostics)
    return request


def _common_criterion(parser: Parser, types: list[str], name: str, raw: str) -> Criterion:
    """Several types: only parameters defined on each of them (e.g. Resource ones)."""
    found = [parser.criterion(t, name, raw) for t in types]
    first = found[0]
    if first.in_list:
        return first
    if any(
        c.param is None or first.param is None or c.param.type != first.param.type for c in found
    ):
        raise Unsupported(f"'{name}' is not a parameter of every type in _type", expression=name)
    return first


def _result_param(
    request: SearchRequest,
    registry: Registry,
    parser: Parser,
    name: str,
    raw: str,
    max_count: int,
) -> None:
    base, _, modifier = name.partition(":")
    if base == "_count":
        request.count = _count(raw, max_count)
    elif base == "_sort":
        request.sort = _sort(registry, request.types, raw)
    elif base == "_total":
        if raw not in TOTAL_MODES:
            raise InvalidRequest("_total is one of none, estimate, accurate", expression="_total")
        request.total = raw
    elif base == "_summary":
        if raw not in SUMMARY_MODES:
            raise InvalidRequest(
                "_summary is one of true, text, data, count, false", expression="_summary"
            )
        request.summary = None if raw == "false" else raw
    elif base == "_elements":
        request.elements = tuple(e.strip() for e in raw.split(",") if e.strip())
    elif base in ("_include", "_revinclude"):
        if modifier not in ("", "iterate", "recurse"):
            raise InvalidRequest(
                f"Modifier ':{modifier}' is not supported on {base}", expression=base
            )
        include = parser.include(raw, base == "_revinclude", modifier != "")
        (request.revincludes if base == "_revinclude" else request.includes).append(include)
    elif base == "_cursor":
        request.cursor = raw
    elif base in ("_contained", "_containedType"):
        raise Unsupported(f"'{base}' is not supported", expression=base)
