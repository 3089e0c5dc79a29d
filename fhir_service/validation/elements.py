"""The element model of FHIR types, compiled once from the core StructureDefinitions.

Each type (resource, complex or primitive datatype) becomes a map from JSON
property name to the ElementDefinition it stands for
(https://hl7.org/fhir/R4/elementdefinition.html), with choice elements
expanded to one name per type (``valueQuantity``,
https://hl7.org/fhir/R4/formats.html#choice) and ``contentReference``
resolved. Models are built lazily per type and kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fhir_service.fhir.package_cache import Definitions

CORE = "http://hl7.org/fhir/StructureDefinition/"
_FHIR_TYPE = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
_REGEX = "http://hl7.org/fhir/StructureDefinition/regex"
_BEST_PRACTICE = "http://hl7.org/fhir/StructureDefinition/elementdefinition-bestpractice"
_SYSTEM = "http://hl7.org/fhirpath/System."


@dataclass(frozen=True, slots=True)
class Constraint:
    """One invariant (ElementDefinition.constraint)."""

    key: str
    severity: str
    human: str
    expression: str
    best_practice: bool


@dataclass(slots=True)
class ElementInfo:
    """One element of a type: cardinality, types, binding, constraints, children."""

    path: str
    name: str
    min: int
    max: int | None
    is_list: bool
    types: tuple[str, ...]
    choice: bool
    binding: tuple[str, str] | None
    constraints: tuple[Constraint, ...]
    targets: tuple[str, ...]
    children: TypeModel | None = None
    content_ref: str | None = None


@dataclass(slots=True)
class TypeModel:
    """The children of a type or backbone element, by JSON property name."""

    name: str
    url: str
    kind: str
    elements: list[ElementInfo] = field(default_factory=list)
    keys: dict[str, tuple[ElementInfo, str]] = field(default_factory=dict)
    constraints: tuple[Constraint, ...] = ()
    regex: str | None = None


def _missing_dependencies(definitions: Definitions) -> dict[str, str]:
    """Canonical base -> ``id#version`` of the guides' dependencies not in ``definitions``
    (https://hl7.org/fhir/R4/implementationguide-definitions.html#ImplementationGuide.dependsOn)."""
    installed = {info.ref.id for info in definitions.packages}
    missing: dict[str, str] = {}
    for info in definitions.packages:
        for path in sorted(info.directory.glob("ImplementationGuide-*.json")):
            try:
                guide = json.loads(path.read_text(encoding="utf-8-sig"))
            except (OSError, ValueError):
                continue
            for dep in guide.get("dependsOn") or []:
                uri, package = dep.get("uri"), dep.get("packageId")
                if not isinstance(uri, str) or not isinstance(package, str):
                    continue
                if package in installed or "/ImplementationGuide/" not in uri:
                    continue
                base = uri.split("/ImplementationGuide/", 1)[0]
                missing[base] = f"{package}#{dep.get('version', '?')}"
    return missing


def _type_code(ed: dict[str, Any], t: dict[str, Any]) -> str:
    code = str(t.get("code", ""))
    if not code.startswith(_SYSTEM):
        return code
    base_path = str((ed.get("base") or {}).get("path", ed.get("path", "")))
    if base_path == "Resource.id":
        return "id"
    for ext in t.get("extension") or []:
        if ext.get("url") == _FHIR_TYPE:
            return str(ext.get("valueUrl") or ext.get("valueUri") or "string")
    return "string"


def _constraints(ed: dict[str, Any]) -> tuple[Constraint, ...]:
    """The constraints of an element, without ele-1 (checked by the structure walk itself)."""
    out = []
    for c in ed.get("constraint") or []:
        if not c.get("expression") or c.get("key") == "ele-1":
            continue
        best = any(
            e.get("url") == _BEST_PRACTICE and e.get("valueBoolean")
            for e in c.get("extension") or []
        )
        out.append(
            Constraint(
                str(c["key"]),
                str(c.get("severity", "error")),
                str(c.get("human", "")),
                str(c["expression"]),
                best,
            )
        )
    return tuple(out)


def _targets(ed: dict[str, Any]) -> tuple[str, ...]:
    found: list[str] = []
    for t in ed.get("type") or []:
        if t.get("code") != "Reference":
            continue
        for profile in t.get("targetProfile") or []:
            found.append(str(profile).rsplit("/", 1)[-1])
    return tuple(found)


class ModelIndex:
    """Compiled type models of one set of core definitions."""

    def __init__(self, definitions: Definitions) -> None:
        self.definitions = definitions
        self._models: dict[str, TypeModel | None] = {}
        self._by_path: dict[str, ElementInfo] = {}
        self._missing: dict[str, str] | None = None

    def missing_package_of(self, url: str) -> str | None:
        """The ``id#version`` of a dependency that is not installed and whose canonical base
        holds ``url`` (from the installed guides' ImplementationGuide.dependsOn)."""
        if self._missing is None:
            self._missing = _missing_dependencies(self.definitions)
        for base, package in self._missing.items():
            if url.startswith(base + "/"):
                return package
        return None

    def model(self, type_name: str) -> TypeModel | None:
        """The model of a type by name (``Patient``, ``HumanName``, ``string``)."""
        if not isinstance(type_name, str):
            return None
        if type_name not in self._models:
            self._models[type_name] = None
            sd = self.definitions.structure_definition(CORE + type_name)
            self._models[type_name] = self._compile(sd) if sd is not None else None
        return self._models[type_name]

    def is_resource(self, type_name: str) -> bool:
        model = self.model(type_name)
        return model is not None and model.kind == "resource"

    def element(self, path: str) -> ElementInfo | None:
        """An element by its definition path (for contentReference)."""
        if path not in self._by_path:
            self.model(path.split(".", 1)[0])
        return self._by_path.get(path)

    def _compile(self, sd: dict[str, Any]) -> TypeModel | None:
        elements = (sd.get("snapshot") or {}).get("element") or []
        if not elements:
            return None
        root_ed = elements[0]
        model = TypeModel(
            name=str(sd.get("type", sd.get("id"))),
            url=f"{sd.get('url')}|{sd.get('version')}" if sd.get("version") else str(sd["url"]),
            kind=str(sd.get("kind", "")),
            constraints=_constraints(root_ed),
        )
        parents: dict[str, TypeModel] = {str(root_ed["path"]): model}
        for ed in elements[1:]:
            if ":" in str(ed.get("id", "")):
                continue
            path = str(ed["path"])
            parent_path, _, name = path.rpartition(".")
            parent = parents.get(parent_path)
            if parent is None:
                continue
            if name == "value" and model.kind == "primitive-type":
                for t in ed.get("type") or []:
                    for ext in t.get("extension") or []:
                        if ext.get("url") == _REGEX:
                            model.regex = str(ext.get("valueString"))
            types = tuple(_type_code(ed, t) for t in ed.get("type") or [])
            choice = name.endswith("[x]")
            max_text = str(ed.get("max", "*"))
            base_max = str((ed.get("base") or {}).get("max", max_text))
            binding = ed.get("binding") or {}
            info = ElementInfo(
                path=path,
                name=name[:-3] if choice else name,
                min=int(ed.get("min", 0)),
                max=None if max_text == "*" else int(max_text),
                is_list=base_max not in ("0", "1"),
                types=types,
                choice=choice,
                binding=(str(binding["strength"]), str(binding["valueSet"]))
                if binding.get("valueSet") and binding.get("strength")
                else None,
                constraints=_constraints(ed),
                targets=_targets(ed),
                content_ref=str(ed["contentReference"]).lstrip("#")
                if ed.get("contentReference")
                else None,
            )
            if types and types[0] in ("BackboneElement", "Element") and len(types) == 1:
                info.children = TypeModel(name=path, url=model.url, kind="backbone")
                parents[path] = info.children
            parent.elements.append(info)
            if choice:
                for code in types:
                    parent.keys[info.name + code[0].upper() + code[1:]] = (info, code)
            else:
                parent.keys[info.name] = (info, types[0] if types else "")
            self._by_path[path] = info
        return model
