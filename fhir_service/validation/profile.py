"""Check a resource against a profile's StructureDefinition snapshot.

Implements, for one profile (https://hl7.org/fhir/R4/profiling.html and
https://hl7.org/fhir/R4/elementdefinition.html): minimum and maximum
cardinality (counted inside present parents only), fixed[x] and pattern[x],
the allowed types of choice elements, slices (extensions by url, and the
discriminators of ``slicing``), and required bindings to ValueSets that expand
offline. Elements whose type is not expanded in the snapshot are checked
against their type's profile or base definition; extensions without a slice
against their own definition when it is installed. What cannot be checked
(an unavailable profile, ValueSet or discriminator) is reported, never passed
silently.

Locations are FHIRPath paths in the instance, e.g.
``Condition.extension[0].valueCodeableConcept``. A missing element, like a
count above the maximum, is reported at its parent, as the HL7 validator does.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fhir_service.errors import Issue
from fhir_service.fhir.expansion import Expander, Expansion
from fhir_service.fhir.package_cache import Definitions, load_definitions
from fhir_service.validation.fixed_pattern import contains_pattern, describe, equals_fixed
from fhir_service.validation.slicing import matches
from fhir_service.validation.snapshot import PRIMITIVE_PREFIX, ElementNode, Snapshot, build_snapshot
from fhir_service.validation.snapshot_gen import with_snapshot

CORE_SD = "http://hl7.org/fhir/StructureDefinition/"
_CODED = (
    "code",
    "Coding",
    "CodeableConcept",
    "string",
    "uri",
    "Quantity",
    "Age",
    "Duration",
    "Distance",
    "Count",
)


_VITAL_SIGNS = CORE_SD + "vitalsigns"
_VITALS_UNITS = "http://hl7.org/fhir/ValueSet/ucum-vitals-common|4.0.1"


def corrected(sd: dict[str, Any]) -> dict[str, Any]:
    """``sd`` with the correction the HL7 validator applies when it loads R4 4.0.1.

    The R4 vital signs profiles (``vitalsigns`` and those derived from it) bind
    ``Observation.component.value[x]``, of every type, to the UCUM vital-sign units as
    *required*; the validator's package loader backs that binding off to *extensible*,
    so a component unit outside the list is a warning. Other definitions are returned
    unchanged.
    """
    url = str(sd.get("url", ""))
    if not (
        url.startswith(CORE_SD)
        and sd.get("version") == "4.0.1"
        and sd.get("type") == "Observation"
        and _VITAL_SIGNS in (url, sd.get("baseDefinition"))
    ):
        return sd
    snapshot = sd.get("snapshot")
    if not isinstance(snapshot, dict):
        return sd
    elements = [
        {**ed, "binding": {**ed["binding"], "strength": "extensible"}}
        if ed.get("path") == "Observation.component.value[x]"
        and (ed.get("binding") or {}).get("valueSet") == _VITALS_UNITS
        else ed
        for ed in snapshot.get("element") or []
    ]
    return {**sd, "snapshot": {**snapshot, "element": elements}}


def definitions_from_cache(root: Path) -> Definitions:
    """The definitions of every package installed in the package cache at ``root``."""
    return load_definitions(root)


@dataclass
class _Item:
    """One instance value of an element: its JSON name, location and value."""

    key: str
    path: str
    value: Any
    type_code: str | None


def _is_complex(type_code: str | None) -> bool:
    return (
        bool(type_code)
        and not str(type_code).startswith(PRIMITIVE_PREFIX)
        and str(type_code)[0].isupper()
    )


class ProfileChecker:
    """Checks resources against profiles of one set of Definitions; snapshots are kept."""

    def __init__(self, definitions: Definitions) -> None:
        self.definitions = definitions
        self._snapshots: dict[str, Snapshot | None] = {}
        self._expander = Expander(definitions)

    def snapshot(self, url: str) -> Snapshot | None:
        """The element tree of a StructureDefinition, or None when it is not installed."""
        if url not in self._snapshots:
            sd = self.definitions.structure_definition(url)
            if sd is not None:
                sd = with_snapshot(sd, self.definitions)
            self._snapshots[url] = build_snapshot(corrected(sd)) if sd is not None else None
        return self._snapshots[url]

    def expand(self, url: str) -> Expansion:
        return self._expander.expand(url)

    def check(self, resource: dict[str, Any], profile_url: str) -> list[Issue]:
        """Every issue of ``resource`` against the profile ``profile_url``."""
        rtype = str(resource.get("resourceType") or "")
        where = [rtype] if rtype else []
        sd = self.definitions.structure_definition(profile_url)
        if sd is None:
            return [
                Issue(
                    "error",
                    "not-found",
                    f"Profile {profile_url} is not available in the installed FHIR packages, "
                    "so the resource could not be checked against it",
                    where,
                )
            ]
        snap = self.snapshot(profile_url)
        if snap is None:
            return [
                Issue(
                    "error",
                    "not-supported",
                    f"Profile {profile_url} has no snapshot, so it could not be checked",
                    where,
                )
            ]
        if rtype and snap.kind == "resource" and rtype != snap.type:
            return [
                Issue(
                    "error",
                    "invalid",
                    f"Profile {profile_url} is for {snap.type}, not {rtype}",
                    where,
                )
            ]
        run = _Run(self, profile_url)
        run.children(resource, snap.root, rtype or snap.type)
        return run.issues


class _Run:
    """One walk over one resource, collecting issues."""

    def __init__(self, checker: ProfileChecker, profile_url: str) -> None:
        self.checker = checker
        self.profile_url = profile_url
        self.issues: list[Issue] = []

    def add(self, severity: str, code: str, text: str, path: str) -> None:
        self.issues.append(Issue(severity, code, text, [path]))

    # -- elements --------------------------------------------------------------------------

    def children(self, obj: dict[str, Any], node: ElementNode, path: str) -> None:
        """Check the child elements of ``node`` in the JSON object ``obj``."""
        sibling_names = {c.name for c in node.children}
        for child in node.children:
            items = self.items(obj, child, path, sibling_names)
            self.cardinality(child, len(items), path)
            if child.slices and not child.is_choice:
                self.sliced(items, child, path)
            else:
                for item in items:
                    self.item(item, self.choice_slice(child, item.key) or child)

    def items(
        self, obj: dict[str, Any], node: ElementNode, path: str, siblings: set[str]
    ) -> list[_Item]:
        """The instance values of an element (for a choice element, of its allowed types)."""
        if not node.is_choice:
            return self._values(
                obj, node.name, node, path, node.type_codes[0] if node.types else None
            )
        prefix = node.name[:-3]
        allowed = {code[0].upper() + code[1:]: code for code in node.type_codes}
        found: list[_Item] = []
        for key in list(obj):
            name = key[1:] if key.startswith("_") else key
            suffix = name[len(prefix) :]
            if not name.startswith(prefix) or not suffix[:1].isupper() or name in siblings:
                continue
            if key.startswith("_") and name in obj:
                continue
            if suffix not in allowed:
                self.add(
                    "error",
                    "structure",
                    f"{node.id}: type {suffix} is not allowed here; allowed: "
                    f"{', '.join(node.type_codes)}",
                    f"{path}.{name}",
                )
                continue
            found.extend(self._values(obj, name, node, path, allowed[suffix]))
        return found

    def _values(
        self, obj: dict[str, Any], key: str, node: ElementNode, path: str, type_code: str | None
    ) -> list[_Item]:
        value, extra = obj.get(key), obj.get("_" + key)
        if value is None and extra is None:
            return []
        if node.is_list or isinstance(value, list):
            values = value if isinstance(value, list) else [] if value is None else [value]
            extras = extra if isinstance(extra, list) else []
            count = max(len(values), len(extras))
            return [
                _Item(key, f"{path}.{key}[{i}]", values[i] if i < len(values) else None, type_code)
                for i in range(count)
            ]
        return [_Item(key, f"{path}.{key}", value, type_code)]

    def choice_slice(self, node: ElementNode, key: str) -> ElementNode | None:
        """The type slice of a choice element for one JSON name (``value[x]:valueQuantity``)."""
        return (
            next((s for s in node.slices if s.slice_name == key), None) if node.is_choice else None
        )

    def cardinality(self, node: ElementNode, count: int, path: str) -> None:
        where = f"{node.id}" if node.slice_name else node.path
        if count < node.min:
            self.add(
                "error",
                "structure",
                f"{where}: minimum required = {node.min}, but only found {count} "
                f"(from {node.source or self.profile_url})",
                path,
            )
        if node.max is not None and count > node.max:
            self.add(
                "error",
                "structure",
                f"{where}: max allowed = {node.max}, but found {count} "
                f"(from {node.source or self.profile_url})",
                path,
            )

    def item(self, item: _Item, node: ElementNode) -> None:
        """Check one instance value against its element, then its content."""
        self.fixed_pattern(item, node)
        self.binding(item, node)
        if item.value is None:
            return
        if node.children:
            if self._object(item, node):
                self.children(item.value, node, item.path)
            return
        content_ref = node.ed.get("contentReference")
        if content_ref:
            self.content_reference(item, node, str(content_ref))
            return
        if not _is_complex(item.type_code) or not self._object(item, node):
            return
        target = self.type_snapshot(item, node)
        if target is not None:
            self.children(item.value, target.root, item.path)

    def _object(self, item: _Item, node: ElementNode) -> bool:
        if isinstance(item.value, dict):
            return True
        self.add(
            "error",
            "structure",
            f"{node.path}: expected a JSON object, found {describe(item.value)}",
            item.path,
        )
        return False

    def content_reference(self, item: _Item, node: ElementNode, ref: str) -> None:
        url, _, element_id = ref.partition("#")
        snap = self.checker.snapshot(url or CORE_SD + node.path.split(".")[0])
        target = snap.by_id.get(element_id) if snap else None
        if target is None:
            self.add(
                "information",
                "not-supported",
                f"{node.path}: content reference {ref} could not be followed; not checked",
                item.path,
            )
        elif self._object(item, node):
            self.children(item.value, target, item.path)

    def type_snapshot(self, item: _Item, node: ElementNode) -> Snapshot | None:
        """The snapshot to check a complex value against: its type profile or base type."""
        code = str(item.type_code)
        profiles = [
            str(p) for t in node.types if t.get("code") == code for p in t.get("profile") or []
        ]
        base = self.checker.snapshot(CORE_SD + code)
        if code in ("Resource", "DomainResource") or (base is not None and base.kind == "resource"):
            rtype = item.value.get("resourceType")
            return self.checker.snapshot(CORE_SD + str(rtype)) if rtype else None
        url = item.value.get("url")
        if code == "Extension" and not profiles and isinstance(url, str) and ":" in url:
            snap = self.checker.snapshot(url)
            if snap is not None and snap.type == "Extension":
                return snap
            self.add(
                "warning",
                "not-found",
                f"Extension {url} is not defined in the installed FHIR packages; "
                "its content was not checked against a definition",
                item.path,
            )
        for profile in profiles:
            snap = self.checker.snapshot(profile)
            if snap is not None:
                return snap
            self.add(
                "warning",
                "not-found",
                f"{node.id}: profile {profile} is not in the installed FHIR packages; "
                f"checked against the base type {code} only",
                item.path,
            )
        return base

    # -- fixed, pattern, binding -----------------------------------------------------------

    def fixed_pattern(self, item: _Item, node: ElementNode) -> None:
        found = node.fixed_or_pattern()
        if found is None:
            return
        kind, key, expected = found
        if kind == "fixed" and not equals_fixed(item.value, expected):
            self.add(
                "error",
                "value",
                f"{node.id}: value is {describe(item.value)} but must be {describe(expected)} "
                f"({key} in {node.source or self.profile_url})",
                item.path,
            )
        elif kind == "pattern" and not contains_pattern(item.value, expected):
            self.add(
                "error",
                "value",
                f"{node.id}: the pattern {describe(expected)} ({key} in "
                f"{node.source or self.profile_url}) is not found in {describe(item.value)}",
                item.path,
            )

    def binding(self, item: _Item, node: ElementNode) -> None:
        binding = node.ed.get("binding") or {}
        strength, vs = binding.get("strength"), binding.get("valueSet")
        if strength not in ("required", "extensible") or not vs or item.value is None:
            return
        if item.type_code not in _CODED:
            if strength == "required":
                self.add(
                    "information",
                    "not-supported",
                    f"{node.id}: required binding to {vs} on a {item.type_code} was not checked",
                    item.path,
                )
            return
        codes = _codes(item.value)
        if not codes:
            return
        expansion = self.checker.expand(str(vs))
        if not expansion.known:
            if strength == "required":
                self.add(
                    "information",
                    "not-supported",
                    f"{node.id}: required binding to {vs} could not be checked offline: "
                    f"{expansion.reason}",
                    item.path,
                )
            return
        if any(expansion.contains(system, code) for system, code in codes):
            return
        shown = ", ".join(f"{s}#{c}" if s else c for s, c in codes)
        severity = "error" if strength == "required" else "warning"
        self.add(
            severity,
            "code-invalid",
            f"{node.id}: the code {shown} is not in the value set {vs} ({strength} binding)",
            item.path,
        )

    # -- slices ----------------------------------------------------------------------------

    def sliced(self, items: list[_Item], node: ElementNode, path: str) -> None:
        """Assign values to the slices of ``node``; check each slice's count and content."""
        slicing = node.ed.get("slicing") or {}
        discriminators = list(slicing.get("discriminator") or [])
        matched: dict[str, list[_Item]] = {s.id: [] for s in node.slices}
        unsure: dict[str, str] = {}
        rest: list[_Item] = []
        for item in items:
            home = None
            for slice_node in node.slices:
                result = matches(self.checker, item.value, slice_node, discriminators)
                if result.result is True:
                    home = slice_node
                    break
                if result.result is None:
                    unsure.setdefault(slice_node.id, result.reason)
            if home is None:
                rest.append(item)
            else:
                matched[home.id].append(item)
                self.item(item, home)
        for slice_node in node.slices:
            count = len(matched[slice_node.id])
            if slice_node.id in unsure and count < slice_node.min:
                self.add(
                    "warning",
                    "not-supported",
                    f"{slice_node.id}: minimum {slice_node.min} could not be checked: "
                    f"{unsure[slice_node.id]}",
                    path,
                )
            else:
                self.cardinality(slice_node, count, path)
        for item in rest:
            if slicing.get("rules") == "closed" and not unsure:
                self.add(
                    "error",
                    "structure",
                    f"{node.path}: this value matches no slice of the closed slicing "
                    f"in {self.profile_url}",
                    item.path,
                )
            self.item(item, node)


def _codes(value: Any) -> list[tuple[str | None, str]]:
    if isinstance(value, str):
        return [(None, value)]
    if not isinstance(value, dict):
        return []
    codings = value.get("coding") if "coding" in value else [value] if "code" in value else []
    return [
        (c.get("system"), str(c["code"]))
        for c in codings or []
        if isinstance(c, dict) and "code" in c
    ]


_CHECKERS: weakref.WeakKeyDictionary[Definitions, ProfileChecker] = weakref.WeakKeyDictionary()


def checker_for(definitions: Definitions) -> ProfileChecker:
    """The one ProfileChecker of a Definitions object (snapshots and expansions are shared)."""
    checker = _CHECKERS.get(definitions)
    if checker is None:
        checker = _CHECKERS[definitions] = ProfileChecker(definitions)
    return checker


def check_profile(
    resource: dict[str, Any], profile_url: str, definitions: Definitions
) -> list[Issue]:
    """Every issue of ``resource`` against the profile with canonical URL ``profile_url``."""
    return checker_for(definitions).check(resource, profile_url)
