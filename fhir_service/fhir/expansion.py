"""Offline expansion of ValueSets from the package cache, shared by validation (bindings)
and search (``:in``, ``:not-in``).

Expands ``compose`` (https://hl7.org/fhir/R4/valueset.html#compose): includes and
excludes listing concepts, naming a whole CodeSystem, or selecting codes of one by
``filter`` (https://hl7.org/fhir/R4/valueset-filter-operator.html: ``is-a``,
``descendent-of``, ``is-not-a``, ``generalizes``, ``=``, ``in``, ``not-in``, ``regex``,
``exists``) on its hierarchy (nested concepts, ``parent``/``child``/``subsumedBy``
properties) and concept properties; and other ValueSets expanded the same way. A
ValueSet without ``compose`` uses its stored ``expansion``. Anything else (a CodeSystem
not in the cache or not ``complete`` there, such as SNOMED CT or LOINC) cannot be
expanded offline, and the reason is returned instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fhir_service.fhir.package_cache import Definitions

Code = tuple[str | None, str]
_PARENT_PROPERTIES = ("parent", "subsumedBy")
_CODE_PROPERTIES = ("concept", "code")


@dataclass(frozen=True)
class Expansion:
    """The codes of a ValueSet, or why they are not known."""

    codes: frozenset[Code] | None
    reason: str = ""

    @property
    def known(self) -> bool:
        return self.codes is not None

    def contains(self, system: str | None, code: str) -> bool:
        """Whether a code is in the set; a ``None`` system matches any system."""
        if self.codes is None:
            return False
        if system is None:
            return any(c == code for _, c in self.codes)
        return (system, code) in self.codes


class _Unexpandable(Exception):
    pass


def _walk(concepts: Iterable[dict[str, Any]], parent: str | None) -> Iterator[tuple[Any, ...]]:
    for concept in concepts:
        if "code" in concept:
            yield str(concept["code"]), parent, concept
        yield from _walk(concept.get("concept") or [], concept.get("code", parent))


def _property_values(concept: dict[str, Any], name: str) -> list[str]:
    found = []
    for prop in concept.get("property") or []:
        if prop.get("code") != name:
            continue
        for key, value in prop.items():
            if key.startswith("value"):
                if isinstance(value, bool):
                    found.append("true" if value else "false")
                elif isinstance(value, dict):
                    found.append(str(value.get("code", "")))
                else:
                    found.append(str(value))
    return found


def _closure(links: dict[str, set[str]], code: str) -> set[str]:
    """Every code reachable from ``code`` (not itself unless on a cycle)."""
    found: set[str] = set()
    todo = list(links.get(code, ()))
    while todo:
        item = todo.pop()
        if item not in found:
            found.add(item)
            todo.extend(links.get(item, ()))
    return found


@dataclass
class _Hierarchy:
    """The concepts of one complete CodeSystem with their parent/child links."""

    concepts: dict[str, dict[str, Any]] = field(default_factory=dict)
    children: dict[str, set[str]] = field(default_factory=dict)
    parents: dict[str, set[str]] = field(default_factory=dict)
    properties: frozenset[str] = frozenset()

    @classmethod
    def of(cls, code_system: dict[str, Any]) -> _Hierarchy:
        declared = {p.get("code") for p in code_system.get("property") or []}
        hierarchy = cls(properties=frozenset(str(c) for c in declared if c))
        for code, parent, concept in _walk(code_system.get("concept") or [], None):
            hierarchy.concepts[code] = concept
            if parent is not None:
                hierarchy.link(str(parent), code)
            for name in _PARENT_PROPERTIES:
                for value in _property_values(concept, name):
                    hierarchy.link(value, code)
            for value in _property_values(concept, "child"):
                hierarchy.link(code, value)
        return hierarchy

    def link(self, parent: str, child: str) -> None:
        self.children.setdefault(parent, set()).add(child)
        self.parents.setdefault(child, set()).add(parent)

    def descendants(self, code: str) -> set[str]:
        return _closure(self.children, code) & self.concepts.keys()

    def ancestors(self, code: str) -> set[str]:
        return _closure(self.parents, code) & self.concepts.keys()

    def select(self, system: str, filter_: dict[str, Any]) -> set[str]:
        """The codes one ``compose.include.filter`` selects."""
        prop, op, value = filter_.get("property"), filter_.get("op"), str(filter_.get("value"))
        if op in ("is-a", "descendent-of", "is-not-a", "generalizes"):
            if value not in self.concepts:
                raise _Unexpandable(f"Code {value} is not in CodeSystem {system}")
            if op == "is-a":
                return {value} | self.descendants(value)
            if op == "descendent-of":
                return self.descendants(value)
            if op == "generalizes":
                return {value} | self.ancestors(value)
            return set(self.concepts) - {value} - self.descendants(value)
        if op in ("=", "in", "not-in", "regex", "exists"):
            known = prop in (*_CODE_PROPERTIES, "display") or prop in self.properties
            if not known:
                raise _Unexpandable(f"CodeSystem {system} defines no property '{prop}'")
            return {code for code in self.concepts if self._matches(code, prop, op, value)}
        raise _Unexpandable(f"Filter operator '{op}' on {system} is not supported")

    def _matches(self, code: str, prop: Any, op: str, value: str) -> bool:
        if prop in _CODE_PROPERTIES:
            values = [code]
        elif prop == "display":
            values = [str(self.concepts[code].get("display", ""))]
        else:
            values = _property_values(self.concepts[code], str(prop))
        if op == "=":
            return value in values
        if op == "in":
            return bool(set(values) & {v.strip() for v in value.split(",")})
        if op == "not-in":
            return not set(values) & {v.strip() for v in value.split(",")}
        if op == "exists":
            return bool(values) == (value == "true")
        try:
            pattern = re.compile(value)
        except re.error:
            raise _Unexpandable(f"Filter regex '{value[:60]}' is not valid") from None
        return any(pattern.fullmatch(v) for v in values)


class Expander:
    """Expands ValueSets from one set of Definitions; results are kept."""

    def __init__(self, definitions: Definitions) -> None:
        self.definitions = definitions
        self._done: dict[str, Expansion] = {}
        self._hierarchies: dict[str, _Hierarchy] = {}

    def expand(self, canonical: str) -> Expansion:
        """The expansion of the ValueSet with this canonical URL (``url`` or ``url|version``)."""
        found = self._done.get(canonical)
        if found is None:
            try:
                found = Expansion(frozenset(self._expand(canonical, ())))
            except _Unexpandable as exc:
                found = Expansion(None, str(exc))
            self._done[canonical] = found
        return found

    def _expand(self, canonical: str, stack: tuple[str, ...]) -> set[Code]:
        if canonical in stack:
            raise _Unexpandable(f"ValueSet {canonical} includes itself")
        vs = self.definitions.value_set(canonical)
        if vs is None:
            raise _Unexpandable(f"ValueSet {canonical} is not in the installed FHIR packages")
        compose = vs.get("compose")
        if not compose:
            contains = (vs.get("expansion") or {}).get("contains")
            if contains:
                return {(c.get("system"), str(c["code"])) for c in contains if "code" in c}
            raise _Unexpandable(f"ValueSet {canonical} has no compose to expand")
        codes: set[Code] = set()
        for include in compose.get("include") or []:
            codes |= self._part(include, (*stack, canonical))
        for exclude in compose.get("exclude") or []:
            codes -= self._part(exclude, (*stack, canonical))
        return codes

    def _part(self, part: dict[str, Any], stack: tuple[str, ...]) -> set[Code]:
        selected: set[Code] | None = None
        system = part.get("system")
        if system:
            version = part.get("version")
            if part.get("concept"):
                selected = {(system, str(c["code"])) for c in part["concept"] if "code" in c}
            elif part.get("filter"):
                hierarchy = self._hierarchy(system, version)
                codes = set(hierarchy.concepts)
                for filter_ in part["filter"]:
                    codes &= hierarchy.select(system, filter_)
                selected = {(system, code) for code in codes}
            else:
                selected = {(system, code) for code in self._hierarchy(system, version).concepts}
        for vs_url in part.get("valueSet") or []:
            codes_of_set = self._expand(str(vs_url), stack)
            selected = codes_of_set if selected is None else selected & codes_of_set
        return selected or set()

    def _hierarchy(self, system: str, version: str | None) -> _Hierarchy:
        canonical = f"{system}|{version}" if version else system
        found = self._hierarchies.get(canonical)
        if found is not None:
            return found
        cs = self.definitions.code_system(canonical)
        if cs is None:
            raise _Unexpandable(f"CodeSystem {system} is not in the installed FHIR packages")
        if cs.get("content") != "complete":
            raise _Unexpandable(
                f"CodeSystem {system} is not complete in the package ({cs.get('content')})"
            )
        found = _Hierarchy.of(cs)
        self._hierarchies[canonical] = found
        return found
