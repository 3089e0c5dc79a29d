"""Definitions with conformance resources supplied alongside the installed packages.

A validation run may bring its own StructureDefinitions, ValueSets, CodeSystems,
Questionnaires and other canonical resources (the HL7 validator's ``-ig`` files):
they are resolved by canonical URL (``url`` or ``url|version``,
https://hl7.org/fhir/R4/references.html#canonical) before the installed packages.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from fhir_service.fhir.package_cache import Definitions
from fhir_service.fhir.packages import PackageRef


class SuppliedDefinitions(Definitions):
    """``base`` with ``resources`` in front of it; the base is shared, never changed."""

    def __init__(self, base: Definitions, resources: Iterable[dict[str, Any]]) -> None:
        # The base's index is reused as is: only the supplied resources are indexed here.
        self.base = base
        self.packages = base.packages
        self.supplied: list[dict[str, Any]] = []
        self._by_canonical: dict[str, dict[str, Any]] = {}
        for resource in resources:
            self.supplied.append(resource)
            url = resource.get("url")
            if not isinstance(url, str):
                continue
            self._by_canonical.setdefault(url, resource)
            version = resource.get("version")
            if isinstance(version, str):
                self._by_canonical.setdefault(f"{url}|{version}", resource)

    def _supplied(self, canonical: str) -> dict[str, Any] | None:
        found = self._by_canonical.get(canonical)
        if found is None and "|" in canonical:
            plain = self._by_canonical.get(canonical.partition("|")[0])
            if plain is not None and plain.get("version") in (None, canonical.partition("|")[2]):
                found = plain
        return found

    def __contains__(self, canonical: str) -> bool:
        return self._supplied(canonical) is not None or canonical in self.base

    def resource(self, canonical: str, resource_type: str | None = None) -> dict[str, Any] | None:
        found = self._supplied(canonical)
        if found is not None and resource_type in (None, found.get("resourceType")):
            return found
        return self.base.resource(canonical, resource_type)

    def urls(self, resource_type: str) -> list[str]:
        own = [
            str(r["url"])
            for r in self.supplied
            if r.get("resourceType") == resource_type and isinstance(r.get("url"), str)
        ]
        return own + self.base.urls(resource_type)

    def all(self, resource_type: str) -> Iterator[dict[str, Any]]:
        for resource in self.supplied:
            if resource.get("resourceType") == resource_type:
                yield resource
        yield from self.base.all(resource_type)

    def package_of(self, canonical: str) -> PackageRef | None:
        return None if self._supplied(canonical) is not None else self.base.package_of(canonical)
