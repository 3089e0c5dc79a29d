"""A StructureDefinition snapshot as a tree of elements, children and slices.

ElementDefinition ids name each element and its slices
(https://hl7.org/fhir/R4/elementdefinition.html#id), e.g.
``Observation.component:systolic.code``: the tree follows them, so a slice
owns its own children, and re-slices (``:a/b``) hang under their slice. What an element
says (cardinality, types, fixed value, children by name) is read once per element and
kept: a snapshot is never changed once built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

PRIMITIVE_PREFIX = "http://hl7.org/fhirpath/System."


@dataclass
class ElementNode:
    """One snapshot element with its children and its slices."""

    ed: dict[str, Any]
    id: str
    name: str
    slice_name: str | None
    source: str = ""
    children: list[ElementNode] = field(default_factory=list)
    slices: list[ElementNode] = field(default_factory=list)

    @cached_property
    def path(self) -> str:
        return str(self.ed.get("path", self.id))

    @cached_property
    def min(self) -> int:
        return int(self.ed.get("min", 0))

    @cached_property
    def max(self) -> int | None:
        """The maximum count, None for ``*``."""
        value = str(self.ed.get("max", "*"))
        return None if value == "*" else int(value)

    @cached_property
    def is_list(self) -> bool:
        """Whether the element repeats in the base resource (its JSON is an array)."""
        base_max = str((self.ed.get("base") or {}).get("max", self.ed.get("max", "*")))
        return base_max != "1" and base_max != "0"

    @cached_property
    def is_choice(self) -> bool:
        return self.name.endswith("[x]")

    @cached_property
    def types(self) -> list[dict[str, Any]]:
        return list(self.ed.get("type") or [])

    @cached_property
    def type_codes(self) -> list[str]:
        return [str(t.get("code")) for t in self.types]

    def fixed_or_pattern(self) -> tuple[str, str, Any] | None:
        """``("fixed"|"pattern", element name, value)`` when the element has one."""
        return self._fixed_or_pattern

    @cached_property
    def _fixed_or_pattern(self) -> tuple[str, str, Any] | None:
        for key, value in self.ed.items():
            if key.startswith("fixed") and key != "fixed":
                return "fixed", key, value
            if key.startswith("pattern") and key != "pattern":
                return "pattern", key, value
        return None

    def child(self, name: str) -> ElementNode | None:
        return self._by_name.get(name)

    @cached_property
    def _by_name(self) -> dict[str, ElementNode]:
        found: dict[str, ElementNode] = {}
        for c in self.children:
            found.setdefault(c.name, c)
        return found


@dataclass
class Snapshot:
    """The element tree of one StructureDefinition."""

    url: str
    type: str
    kind: str
    root: ElementNode
    by_id: dict[str, ElementNode]


def _split_id(element_id: str, path: str) -> list[tuple[str, str | None]]:
    """Split an element id into (name, slice name) segments, guided by its path."""
    names = path.split(".")
    segments: list[tuple[str, str | None]] = []
    pos = 0
    for i, name in enumerate(names):
        if not element_id.startswith(name, pos):
            return [(n, None) for n in names]
        pos += len(name)
        if pos < len(element_id) and element_id[pos] == ":":
            if i + 1 == len(names):
                segments.append((name, element_id[pos + 1 :]))
                pos = len(element_id)
                continue
            nxt = element_id.find("." + names[i + 1], pos)
            while nxt != -1 and element_id[nxt + 1 + len(names[i + 1]) :][:1] not in ("", ".", ":"):
                nxt = element_id.find("." + names[i + 1], nxt + 1)
            if nxt == -1:
                return [(n, None) for n in names]
            segments.append((name, element_id[pos + 1 : nxt]))
            pos = nxt
        else:
            segments.append((name, None))
        pos += 1  # the dot
    return segments


def _join(segments: list[tuple[str, str | None]]) -> str:
    return ".".join(name if s is None else f"{name}:{s}" for name, s in segments)


def build_snapshot(sd: dict[str, Any]) -> Snapshot | None:
    """The element tree of a StructureDefinition's snapshot, or None without a snapshot."""
    elements = (sd.get("snapshot") or {}).get("element") or []
    if not elements:
        return None
    by_id: dict[str, ElementNode] = {}
    root: ElementNode | None = None
    for ed in elements:
        path = str(ed.get("path", ""))
        segments = _split_id(str(ed.get("id") or path), path)
        element_id = _join(segments)
        name, slice_name = segments[-1]
        node = ElementNode(ed, element_id, name, slice_name, str(sd.get("url", "")))
        by_id[element_id] = node
        if len(segments) == 1 and slice_name is None:
            root = node
            continue
        if slice_name is not None:
            owner_slice = slice_name.rpartition("/")[0] if "/" in slice_name else None
            owner_id = _join([*segments[:-1], (name, owner_slice)])
            owner = by_id.get(owner_id)
            if owner is not None:
                owner.slices.append(node)
        else:
            parent = by_id.get(_join(segments[:-1]))
            if parent is not None:
                parent.children.append(node)
    if root is None:
        return None
    return Snapshot(
        url=str(sd.get("url", "")),
        type=str(sd.get("type", root.name)),
        kind=str(sd.get("kind", "")),
        root=root,
        by_id=by_id,
    )
