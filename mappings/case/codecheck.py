"""Which codes of a case are checked, and which are taken as written.

A code written as ``prefix:code`` must be in the project's tables
(mappings/terminology/*.yaml) and is checked there. A code written out in full
(``{system, code, display}``) is looked up in the same tables, then in the FHIR
packages of the package cache (https://hl7.org/fhir/packages.html): the concepts of
every CodeSystem (nested concepts included) and the concepts listed in every ValueSet's
``compose.include`` or ``expansion``
(https://hl7.org/fhir/R4/valueset.html#compose). A code found nowhere is kept as
written and reported as unchecked; ``fhir-service map --strict`` refuses such a case.
SNOMED CT and LOINC are not shipped in FHIR packages, so their codes are found there
only when a value set lists them (e.g. mCODE's value sets).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from fhir_service.fhir.package_cache import Definitions
from mappings.case.model import Case
from mappings.case.types import ExplicitCode
from mappings.terminology import codes


@dataclass(frozen=True)
class CodeUse:
    """One written-out code of the case, where it is and where (if anywhere) it was found."""

    field: str
    system: str
    code: str
    display: str
    found_in: str | None

    @property
    def checked(self) -> bool:
        return self.found_in is not None

    def as_json(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "system": self.system,
            "code": self.code,
            "display": self.display,
            "checked": self.checked,
            "found_in": self.found_in,
        }

    def __str__(self) -> str:
        return f"{self.field}: {self.system}|{self.code} ({self.display})"


def explicit_codes(case: Case) -> Iterator[tuple[str, ExplicitCode]]:
    """Every written-out code of the case with its field path (``procedures[0].codes[1]``)."""
    yield from _walk(case, "")


def _walk(value: Any, path: str) -> Iterator[tuple[str, ExplicitCode]]:
    if isinstance(value, ExplicitCode):
        yield path, value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _walk(getattr(value, name), f"{path}.{name}" if path else name)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}[{i}]")


class PackageCodes:
    """(system, code) -> where it is defined or listed, over the packages' terminology."""

    def __init__(self, definitions: Definitions | None) -> None:
        self._definitions = definitions
        self._index: dict[tuple[str, str], str] | None = None

    def find(self, system: str, code: str) -> str | None:
        if self._definitions is None:
            return None
        if self._index is None:
            self._index = _index(self._definitions)
        return self._index.get((system, code))


def _index(definitions: Definitions) -> dict[tuple[str, str], str]:
    index: dict[tuple[str, str], str] = {}
    for cs in definitions.all("CodeSystem"):
        url = cs.get("url")
        if not url:
            continue
        where = f"CodeSystem {url} ({definitions.package_of(url)})"
        stack = list(cs.get("concept", []))
        while stack:
            concept = stack.pop()
            if "code" in concept:
                index.setdefault((url, concept["code"]), where)
            stack.extend(concept.get("concept", []))
    for vs in definitions.all("ValueSet"):
        url = vs.get("url", "")
        where = f"ValueSet {url} ({definitions.package_of(url)})"
        for include in vs.get("compose", {}).get("include", []):
            system = include.get("system")
            for concept in include.get("concept", []):
                if system and "code" in concept:
                    index.setdefault((system, concept["code"]), where)
        stack = list(vs.get("expansion", {}).get("contains", []))
        while stack:
            item = stack.pop()
            if item.get("system") and item.get("code"):
                index.setdefault((item["system"], item["code"]), where)
            stack.extend(item.get("contains", []))
    return index


def _table_source(system: str, code: str) -> str | None:
    for prefix, uri in codes.systems().items():
        if uri == system:
            entry = codes.table(prefix).get(code)
            if entry is not None:
                return f"mappings/terminology/{prefix}.yaml ({entry.status}: {entry.source})"
    return None


def check_codes(case: Case, definitions: Definitions | None) -> list[CodeUse]:
    """Every written-out code of ``case``, found in the tables, the packages, or nowhere."""
    packages = PackageCodes(definitions)
    uses = []
    for field, code in explicit_codes(case):
        found = _table_source(code.uri, code.code) or packages.find(code.uri, code.code)
        uses.append(CodeUse(field, code.uri, code.code, code.display, found))
    return uses
