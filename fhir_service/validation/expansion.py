"""Offline expansion of ValueSets from the package cache.

Expands ``compose`` (https://hl7.org/fhir/R4/valueset.html#compose) when every
include and exclude is an explicit list of concepts, a whole CodeSystem whose
``content`` is ``complete`` in the cache, or another ValueSet that expands this
way. Anything else (filters, code systems not in the cache such as SNOMED CT or
LOINC) cannot be expanded here, and the reason is returned instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fhir_service.fhir.package_cache import Definitions

Code = tuple[str | None, str]


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


def _concepts(concepts: Iterable[dict[str, Any]]) -> Iterable[str]:
    for concept in concepts:
        if "code" in concept:
            yield str(concept["code"])
        yield from _concepts(concept.get("concept") or [])


class Expander:
    """Expands ValueSets from one set of Definitions; results are kept."""

    def __init__(self, definitions: Definitions) -> None:
        self.definitions = definitions
        self._done: dict[str, Expansion] = {}

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
            raise _Unexpandable(f"ValueSet {canonical} has no compose to expand")
        codes: set[Code] = set()
        for include in compose.get("include") or []:
            codes |= self._part(include, (*stack, canonical))
        for exclude in compose.get("exclude") or []:
            codes -= self._part(exclude, (*stack, canonical))
        return codes

    def _part(self, part: dict[str, Any], stack: tuple[str, ...]) -> set[Code]:
        if part.get("filter"):
            raise _Unexpandable(
                f"ValueSet {stack[-1]} selects codes of {part.get('system')} by filter"
            )
        selected: set[Code] | None = None
        system = part.get("system")
        if system:
            if part.get("concept"):
                selected = {(system, str(c["code"])) for c in part["concept"] if "code" in c}
            else:
                selected = {
                    (system, code) for code in self._whole_system(system, part.get("version"))
                }
        for vs_url in part.get("valueSet") or []:
            codes = self._expand(str(vs_url), stack)
            selected = codes if selected is None else selected & codes
        return selected or set()

    def _whole_system(self, system: str, version: str | None) -> list[str]:
        cs = self.definitions.code_system(f"{system}|{version}" if version else system)
        if cs is None:
            raise _Unexpandable(f"CodeSystem {system} is not in the installed FHIR packages")
        if cs.get("content") != "complete":
            raise _Unexpandable(
                f"CodeSystem {system} is not complete in the package ({cs.get('content')})"
            )
        return list(_concepts(cs.get("concept") or []))
