"""Index rows of one resource, one list per parameter type
(https://hl7.org/fhir/R4/search.html#ptypes).

- string: (param, normalized, exact); normalized is accent-stripped and case-folded
  for prefix matching; HumanName and Address contribute their parts.
- token: (param, system, code, normalized text) from code, Coding,
  CodeableConcept, Identifier, ContactPoint, boolean and id values; an Identifier
  with a type also gives ``<param>:of-type`` rows (type system, "type code|value").
- reference: (param, target type, target id, url); url holds absolute or canonical
  references; a Reference carrying only an identifier gives a token row named
  ``<param>:identifier``.
- date: (param, low, high), half-open UTC range (partial dates, Period, Timing).
- number: (param, value); quantity: (param, value, system, code, canonical value,
  canonical code) with the UCUM units of ``units``.
- uri: (param, value).
- composite (two components): (param, a_system, a_code, b_system, b_code, b_value,
  b_canon, b_canon_code, b_low, b_high, b_text): the first component a token
  (system, code) or reference (type, id), the second a token, quantity, date or
  string, both taken from the same element (https://hl7.org/fhir/R4/search.html#composite).
- composite_part (every other composite, e.g. three components): (param, row_no, part,
  system, code, value, canon, canon_code, low, high, text), one row per component of
  each combination of component values of one element; ``row_no`` ties them together.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from fhir_service.search.dates import MAX_INSTANT, MIN_INSTANT, parse_range
from fhir_service.search.fhirpath import Node, element_names
from fhir_service.search.registry import Registry, SearchParam
from fhir_service.search.units import canonical

MAX_VALUE_LENGTH = 512
"""Longer values are cut (strings) or skipped (codes): index keys stay small."""

TABLE_KINDS = (
    "string",
    "token",
    "reference",
    "date",
    "number",
    "quantity",
    "uri",
    "composite",
    "composite_part",
)
MAX_COMBINATIONS = 64
"""Component value combinations indexed per element of a composite_part parameter."""
Rows = dict[str, list[tuple[Any, ...]]]
_CONTACT_SYSTEMS = frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"})
_NAME_PARTS = ("family", "given", "prefix", "suffix", "text")
_ADDRESS_PARTS = ("line", "city", "district", "state", "postalCode", "country", "text")


def normalize(text: str) -> str:
    """Accents stripped and case folded (https://hl7.org/fhir/R4/search.html#string)."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return stripped.casefold()[:MAX_VALUE_LENGTH]


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        keys = _ADDRESS_PARTS if ("line" in value or "city" in value) else _NAME_PARTS
        if not any(k in value for k in keys):
            keys = tuple(k for k, v in value.items() if k != "div")
        for key in keys:
            part = value.get(key)
            for item in part if isinstance(part, list) else [part]:
                if isinstance(item, str):
                    yield item
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _string_rows(code: str, nodes: list[Node], out: list[tuple[Any, ...]]) -> None:
    for value, _ in nodes:
        for text in _strings(value):
            out.append((code, normalize(text), text[:MAX_VALUE_LENGTH]))


def _token_rows(code: str, nodes: list[Node], out: list[tuple[Any, ...]]) -> None:
    for value, _ in nodes:
        if isinstance(value, bool):
            out.append((code, None, "true" if value else "false", None))
        elif isinstance(value, str | int | float):
            out.append((code, None, str(value), None))
        elif isinstance(value, dict):
            if "coding" in value or ("text" in value and "system" not in value):
                text = value.get("text")
                codings = value.get("coding") or []
                for coding in codings:
                    if isinstance(coding, dict):
                        label = text or coding.get("display")
                        out.append(_coding_row(code, coding, label))
                if not codings and isinstance(text, str):
                    out.append((code, None, None, normalize(text)))
            elif "code" in value:
                out.append(_coding_row(code, value, value.get("display")))
            elif "value" in value:
                system = value.get("system")
                if system in _CONTACT_SYSTEMS and "type" not in value:
                    system = None
                type_text = (value.get("type") or {}).get("text")
                label = normalize(type_text) if isinstance(type_text, str) else None
                out.append((code, system, str(value["value"]), label))
                for coding in (value.get("type") or {}).get("coding") or []:
                    if isinstance(coding, dict) and coding.get("code"):
                        # :of-type rows: type system, "type code|value".
                        typed = f"{coding['code']}|{value['value']}"
                        out.append((f"{code}:of-type", coding.get("system"), typed, None))


def _coding_row(code: str, coding: dict[str, Any], label: Any) -> tuple[Any, ...]:
    text = normalize(label) if isinstance(label, str) else None
    value = coding.get("code")
    return (code, coding.get("system"), None if value is None else str(value), text)


def split_reference(reference: str) -> tuple[str | None, str | None, str | None]:
    """(type, id, url) of a reference text: relative ``Type/id``, or absolute (url kept and its
    trailing ``Type/id`` parsed), or canonical/urn (url only)."""
    text = reference.split("#")[0]
    absolute = "://" in text or text.startswith("urn:")
    path = text.split("/_history/")[0]
    if "|" in path:
        return None, None, text
    parts = path.split("/")
    if len(parts) >= 2 and parts[-2][:1].isupper() and parts[-2].isalpha():
        return parts[-2], parts[-1], text if absolute else None
    return None, None, text if absolute else None


def _reference_rows(code: str, nodes: list[Node], rows: Rows) -> None:
    out = rows["reference"]
    for value, _ in nodes:
        if isinstance(value, str):
            rtype, rid, url = split_reference(value)
            out.append((code, rtype, rid, url or value))
        elif isinstance(value, dict):
            reference = value.get("reference")
            if isinstance(reference, str):
                rtype, rid, url = split_reference(reference)
                out.append((code, rtype, rid, url))
            identifier = value.get("identifier")
            if isinstance(identifier, dict) and identifier.get("value"):
                rows["token"].append(
                    (f"{code}:identifier", identifier.get("system"), identifier["value"], None)
                )


def _period(value: dict[str, Any]) -> tuple[datetime, datetime] | None:
    start = parse_range(value["start"]) if isinstance(value.get("start"), str) else None
    end = parse_range(value["end"]) if isinstance(value.get("end"), str) else None
    if start is None and end is None:
        return None
    return (start.low if start else MIN_INSTANT, end.high if end else MAX_INSTANT)


def _date_rows(code: str, nodes: list[Node], out: list[tuple[Any, ...]]) -> None:
    for value, _ in nodes:
        if isinstance(value, str):
            found = parse_range(value)
            if found is not None:
                out.append((code, found.low, found.high))
        elif isinstance(value, dict):
            if "start" in value or "end" in value:
                period = _period(value)
                if period is not None:
                    out.append((code, *period))
            elif "event" in value or "repeat" in value:
                for event in value.get("event") or []:
                    if isinstance(event, str) and (found := parse_range(event)) is not None:
                        out.append((code, found.low, found.high))
                bounds = (value.get("repeat") or {}).get("boundsPeriod")
                if isinstance(bounds, dict) and (period := _period(bounds)) is not None:
                    out.append((code, *period))


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(Decimal(value))
        except (InvalidOperation, ValueError):
            return None
    return None


def _quantity_rows(code: str, nodes: list[Node], out: list[tuple[Any, ...]]) -> None:
    for value, _ in nodes:
        if not isinstance(value, dict):
            continue
        items = [value]
        if "low" in value or "high" in value:
            items = [v for v in (value.get("low"), value.get("high")) if isinstance(v, dict)]
        for item in items:
            number = _number(item.get("value"))
            if number is None:
                continue
            system = item.get("system")
            unit_code = item.get("code") or item.get("currency") or item.get("unit")
            converted = canonical(number, system, unit_code)
            out.append(
                (
                    code,
                    number,
                    system,
                    unit_code,
                    converted[0] if converted else None,
                    converted[1] if converted else None,
                )
            )


def _number_rows(code: str, nodes: list[Node], out: list[tuple[Any, ...]]) -> None:
    for value, _ in nodes:
        number = _number(value.get("value") if isinstance(value, dict) else value)
        if number is not None:
            out.append((code, number))


def _uri_rows(code: str, nodes: list[Node], out: list[tuple[Any, ...]]) -> None:
    for value, _ in nodes:
        if isinstance(value, str) and len(value) <= MAX_VALUE_LENGTH:
            out.append((code, value))


def _component_rows(kind: str, nodes: list[Node]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    if not nodes:
        return out
    if kind == "token":
        _token_rows("", nodes, out)
    elif kind == "quantity":
        _quantity_rows("", nodes, out)
    elif kind == "date":
        _date_rows("", nodes, out)
    elif kind == "string":
        _string_rows("", nodes, out)
    elif kind == "reference":
        _reference_rows("", nodes, {"reference": out, "token": []})
    elif kind == "number":
        _number_rows("", nodes, out)
    elif kind == "uri":
        _uri_rows("", nodes, out)
    return out


def _second(kind: str, row: tuple[Any, ...]) -> tuple[Any, ...]:
    """(b_system, b_code, b_value, b_canon, b_canon_code, b_low, b_high, b_text)."""
    if kind == "token":
        return (row[1], row[2], None, None, None, None, None, None)
    if kind == "quantity":
        return (row[2], row[3], row[1], row[4], row[5], None, None, None)
    if kind == "date":
        return (None, None, None, None, None, row[1], row[2], None)
    return (None, None, None, None, None, None, None, row[1])


def _composite_rows(param: SearchParam, nodes: list[Node], out: list[tuple[Any, ...]]) -> None:
    first, second = param.components
    for node in nodes:
        a_rows = _component_rows(first.type, first.evaluate(node[0]))
        firsts = [(r[1], r[2]) for r in a_rows if r[2] is not None]
        if not firsts:
            continue
        seconds = [
            _second(second.type, r) for r in _component_rows(second.type, second.evaluate(node[0]))
        ]
        for a in firsts:
            for b in seconds:
                out.append((param.code, *a, *b))


def _part(kind: str, row: tuple[Any, ...]) -> tuple[Any, ...]:
    """(system, code, value, canon, canon_code, low, high, text) of one component row."""
    if kind in ("token", "reference"):
        return (row[1], row[2], None, None, None, None, None, None)
    if kind == "quantity":
        return (row[2], row[3], row[1], row[4], row[5], None, None, None)
    if kind == "number":
        return (None, None, row[1], None, None, None, None, None)
    if kind == "date":
        return (None, None, None, None, None, row[1], row[2], None)
    if kind == "uri":
        return (None, row[1], None, None, None, None, None, None)
    return (None, None, None, None, None, None, None, row[1])


def _composite_part_rows(
    param: SearchParam, nodes: list[Node], resource: dict[str, Any], out: list[tuple[Any, ...]]
) -> None:
    row_no = 0
    for node in nodes:
        combinations: list[tuple[tuple[Any, ...], ...]] = [()]
        for component in param.components:
            start = resource if component.on_resource else node[0]
            values = _component_rows(component.type, component.evaluate(start))
            parts = [_part(component.type, r) for r in values]
            combinations = [(*c, p) for c in combinations for p in parts][:MAX_COMBINATIONS]
        for combination in combinations:
            for part, columns in enumerate(combination):
                out.append((param.code, row_no, part, *columns))
            row_no += 1


def _rows_of(param: SearchParam, nodes: list[Node], resource: dict[str, Any], rows: Rows) -> None:
    kind = param.type
    if kind == "composite" and not param.pair:
        _composite_part_rows(param, nodes, resource, rows["composite_part"])
    elif kind == "composite":
        _composite_rows(param, nodes, rows["composite"])
    elif kind == "string":
        _string_rows(param.code, nodes, rows["string"])
    elif kind == "token":
        _token_rows(param.code, nodes, rows["token"])
    elif kind == "reference":
        _reference_rows(param.code, nodes, rows)
    elif kind == "date":
        _date_rows(param.code, nodes, rows["date"])
    elif kind == "quantity":
        _quantity_rows(param.code, nodes, rows["quantity"])
    elif kind == "number":
        _number_rows(param.code, nodes, rows["number"])
    elif kind == "uri":
        _uri_rows(param.code, nodes, rows["uri"])


def _fits(row: tuple[Any, ...]) -> bool:
    return all(not isinstance(v, str) or len(v) <= MAX_VALUE_LENGTH for v in row)


def extract(registry: Registry, resource: dict[str, Any]) -> Rows:
    """The index rows of ``resource`` for every indexed parameter of its type, deduplicated."""
    rows: Rows = {kind: [] for kind in TABLE_KINDS}
    present = element_names(resource)
    for param in registry.indexed(resource["resourceType"]):
        assert param.evaluate is not None
        if param.starts is not None and param.starts.isdisjoint(present):
            continue  # most parameters of a type: their element is absent
        nodes = param.evaluate(resource)
        if nodes:
            _rows_of(param, nodes, resource, rows)
    return {kind: [r for r in dict.fromkeys(found) if _fits(r)] for kind, found in rows.items()}
