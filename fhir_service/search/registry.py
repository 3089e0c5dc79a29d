"""The SearchParameters of the core package, compiled once per resource type
(https://hl7.org/fhir/R4/searchparameter.html, https://hl7.org/fhir/R4/searchparameter-registry.html).

``get_registry()`` reads hl7.fhir.r4.core#4.0.1 from the package cache
(``configure(root)`` names the cache; the default is ``~/.fhir/packages``);
``Registry.extended`` adds custom SearchParameters stored on the server
(https://hl7.org/fhir/R4/searchparameter.html, status ``active``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fhir_service.fhir.package_cache import Definitions, load_definitions
from fhir_service.search.fhirpath import (
    Evaluator,
    compile_expression,
    compile_relative,
    first_elements,
)

CORE_PACKAGE = "hl7.fhir.r4.core#4.0.1"
DEFAULT_PACKAGE_CACHE = Path.home() / ".fhir" / "packages"
CORE_URL = "http://hl7.org/fhir/SearchParameter/"
INDEXED_TYPES = frozenset(
    {"string", "token", "reference", "date", "quantity", "number", "uri", "composite"}
)
"""Parameter types with an index table; special ones are not indexed."""
COMPOSITE_FIRST = frozenset({"token", "reference"})
COMPOSITE_SECOND = frozenset({"token", "quantity", "string", "date"})
"""Two-component composites of these types have one row each in ``sp_composite``."""
COMPONENT_TYPES = frozenset({"token", "reference", "quantity", "date", "string", "number", "uri"})
"""Component types of the other composites (three or more components, or other pairs),
indexed one row per component in ``sp_composite_part``."""


@dataclass(frozen=True)
class Component:
    """One component of a composite parameter: its type and relative expression."""

    type: str
    evaluate: Evaluator = field(compare=False, repr=False)
    on_resource: bool = False
    """The expression starts at ``%resource`` (evaluated on the resource, not the element)."""


@dataclass(frozen=True)
class SearchParam:
    """One SearchParameter as it applies to one resource type."""

    code: str
    type: str
    url: str
    expression: str
    targets: tuple[str, ...] = ()
    evaluate: Evaluator | None = field(default=None, compare=False, repr=False)
    components: tuple[Component, ...] = ()
    starts: frozenset[str] | None = None
    """The resource elements ``evaluate`` starts at (``first_elements``); None: anywhere."""

    @property
    def indexed(self) -> bool:
        if self.type == "composite" and len(self.components) < 2:
            return False
        return self.type in INDEXED_TYPES and self.evaluate is not None

    @property
    def pair(self) -> bool:
        """A composite indexed in ``sp_composite`` (else in ``sp_composite_part``)."""
        return (
            len(self.components) == 2
            and self.components[0].type in COMPOSITE_FIRST
            and self.components[1].type in COMPOSITE_SECOND
        )


class Registry:
    """SearchParameters by resource type and code."""

    def __init__(self, parameters: list[dict[str, Any]], definitions: Definitions | None) -> None:
        self.definitions = definitions
        self.parameters = parameters
        self._extended: dict[Any, Registry] = {}
        self._by_url: dict[Any, dict[str, Any]] | None = None
        self._by_base: dict[str, list[dict[str, Any]]] = {}
        for sp in parameters:
            for base in sp.get("base") or []:
                self._by_base.setdefault(base, []).append(sp)
        self._compiled: dict[str, dict[str, SearchParam]] = {}
        self._indexed: dict[str, list[SearchParam]] = {}
        self._lock = threading.Lock()

    def for_type(self, resource_type: str) -> dict[str, SearchParam]:
        """Every parameter of ``resource_type`` (its own, then Resource/DomainResource ones)."""
        found = self._compiled.get(resource_type)
        if found is not None:
            return found
        with self._lock:
            found = {}
            for base in (resource_type, "DomainResource", "Resource"):
                for sp in self._by_base.get(base, []):
                    code = sp["code"]
                    if code in found:
                        continue
                    expression = sp.get("expression") or ""
                    evaluate = compile_expression(expression, resource_type) if expression else None
                    found[code] = SearchParam(
                        code=code,
                        type=sp["type"],
                        url=sp.get("url", ""),
                        expression=expression,
                        targets=tuple(sp.get("target") or ()),
                        evaluate=evaluate,
                        components=self._components(sp, resource_type),
                        starts=first_elements(expression, resource_type) if evaluate else None,
                    )
            self._compiled[resource_type] = found
        return found

    def cached_extension(self, key: Any) -> Registry | None:
        """The registry ``extended`` built under ``key``, if any."""
        return self._extended.get(key)

    def extended(self, key: Any, custom: list[dict[str, Any]]) -> Registry:
        """This registry plus ``custom`` SearchParameters (stored ones), cached under ``key``;
        a custom parameter never replaces a core one with the same code."""
        found = self._extended.get(key)
        if found is None:
            known = {sp.get("url") for sp in self.parameters}
            usable = [sp for sp in custom if _usable(sp) and sp.get("url") not in known]
            found = Registry([*self.parameters, *usable], self.definitions)
            if len(self._extended) > 16:
                self._extended.clear()
            self._extended[key] = found
        return found

    def _components(self, sp: dict[str, Any], resource_type: str) -> tuple[Component, ...]:
        """The components of a supported composite (two or more, of ``COMPONENT_TYPES``),
        else ()."""
        if sp.get("type") != "composite":
            return ()
        if self._by_url is None:
            self._by_url = {p.get("url"): p for p in self.parameters}
        found = []
        for component in sp.get("component") or []:
            definition = self._by_url.get(component.get("definition"))
            expression = str(component.get("expression") or "").strip()
            on_resource = expression.startswith("%resource.")
            evaluate = (
                compile_expression(resource_type + expression[len("%resource") :], resource_type)
                if on_resource
                else compile_relative(expression)
            )
            if definition is None or evaluate is None:
                return ()
            if definition["type"] not in COMPONENT_TYPES:
                return ()
            found.append(Component(definition["type"], evaluate, on_resource))
        return tuple(found) if len(found) >= 2 else ()

    def get(self, resource_type: str, code: str) -> SearchParam | None:
        return self.for_type(resource_type).get(code)

    def indexed(self, resource_type: str) -> list[SearchParam]:
        """The parameters of ``resource_type`` written to the index tables."""
        found = self._indexed.get(resource_type)
        if found is None:
            found = [p for p in self.for_type(resource_type).values() if p.indexed]
            self._indexed[resource_type] = found
        return found


def _usable(sp: dict[str, Any]) -> bool:
    return (
        sp.get("status") == "active"
        and isinstance(sp.get("code"), str)
        and isinstance(sp.get("type"), str)
        and isinstance(sp.get("base"), list)
        and isinstance(sp.get("expression"), str)
    )


def _core_parameters(definitions: Definitions) -> list[dict[str, Any]]:
    return [
        sp
        for sp in definitions.search_parameters()
        if str(sp.get("url", "")).startswith(CORE_URL) and "example" not in str(sp.get("id", ""))
    ]


_state: dict[str, Any] = {"root": DEFAULT_PACKAGE_CACHE, "registry": None}
_state_lock = threading.Lock()


def configure(root: Path) -> None:
    """Use the package cache at ``root`` (called by the api and cli with their Settings)."""
    with _state_lock:
        if Path(root) != _state["root"]:
            _state["root"] = Path(root)
            _state["registry"] = None


def configured_root() -> Path:
    """The package cache the registry reads (the last ``configure``d one)."""
    root: Path = _state["root"]
    return root


def get_registry() -> Registry:
    """The registry of the core package (loaded once; PackageError if it is not installed)."""
    registry = _state["registry"]
    if registry is None:
        with _state_lock:
            registry = _state["registry"]
            if registry is None:
                definitions = load_definitions(_state["root"], [CORE_PACKAGE])
                registry = Registry(_core_parameters(definitions), definitions)
                _state["registry"] = registry
    assert isinstance(registry, Registry)
    return registry
