"""A snapshot for a StructureDefinition that only has a differential.

Follows https://hl7.org/fhir/R4/profiling.html#snapshot: the snapshot is the base
definition's snapshot (``baseDefinition``, itself generated when needed) with each
differential element applied in order. An element of the differential whose id is
already in the snapshot constrains it (its properties replace the base's,
``constraint`` is added to); a new slice (``path:name``) copies the sliced element,
a child of a slice copies the matching child of the sliced element; a path into a
datatype the snapshot does not expand first expands that datatype's elements
(https://hl7.org/fhir/R4/elementdefinition.html#id).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from fhir_service.fhir.package_cache import Definitions

_ADDITIVE = ("constraint", "condition", "mapping")
_SLICE = re.compile(r":[^.]+")


def with_snapshot(
    sd: dict[str, Any], definitions: Definitions, _seen: frozenset[str] = frozenset()
) -> dict[str, Any] | None:
    """``sd`` itself when it has a snapshot, else a copy with a generated one (or None)."""
    if (sd.get("snapshot") or {}).get("element"):
        return sd
    diff = (sd.get("differential") or {}).get("element") or []
    base_url = sd.get("baseDefinition")
    url = str(sd.get("url") or "")
    if not isinstance(base_url, str) or url in _seen:
        return None
    base_sd = definitions.structure_definition(base_url)
    if base_sd is None:
        return None
    base = with_snapshot(base_sd, definitions, _seen | {url})
    if base is None:
        return None
    elements = [copy.deepcopy(e) for e in base["snapshot"]["element"]]
    for d in diff:
        if not isinstance(d, dict) or not isinstance(d.get("path"), str):
            continue
        element_id = str(d.get("id") or _id_of(d))
        index = _find(elements, element_id)
        if index is None:
            index = _add(elements, element_id, definitions)
        if index is None:
            continue  # a path the base does not have: the element cannot be placed
        _merge(elements[index], d)
    out = dict(sd)
    out["snapshot"] = {"element": elements}
    return out


def _id_of(d: dict[str, Any]) -> str:
    path = str(d["path"])
    name = d.get("sliceName")
    return f"{path}:{name}" if isinstance(name, str) else path


def _find(elements: list[dict[str, Any]], element_id: str) -> int | None:
    for i, e in enumerate(elements):
        if str(e.get("id") or e.get("path")) == element_id:
            return i
    return None


def _subtree_end(elements: list[dict[str, Any]], index: int) -> int:
    """The index after the last element under ``elements[index]`` (its children, slices)."""
    own = str(elements[index].get("id") or elements[index].get("path"))
    end = index + 1
    while end < len(elements):
        other = str(elements[end].get("id") or elements[end].get("path"))
        if not (other.startswith(own + ".") or other.startswith(own + ":")):
            break
        end += 1
    return end


def _add(elements: list[dict[str, Any]], element_id: str, definitions: Definitions) -> int | None:
    head, _, last = element_id.rpartition(".")
    if ":" in last:
        # A new slice: a copy of the sliced element (and its children), after its subtree.
        name, _, slice_name = last.partition(":")
        sliced_id = f"{head}.{name}" if head else name
        sliced = _find(elements, sliced_id)
        if sliced is None:
            sliced = _add(elements, sliced_id, definitions)
            if sliced is None:
                return None
        end = _subtree_end(elements, sliced)
        template = [copy.deepcopy(e) for e in elements[sliced:end]]
        template = [
            e for e in template if ":" not in str(e.get("id") or "")[len(sliced_id) :]
        ]  # the unsliced children only
        for e in template:
            e_id = str(e.get("id") or e.get("path"))
            e["id"] = element_id + e_id[len(sliced_id) :]
        template[0]["sliceName"] = slice_name.rpartition("/")[2]
        template[0].pop("slicing", None)
        elements[end:end] = template
        return end
    if not head:
        return None
    parent = _find(elements, head)
    if parent is None:
        parent = _add(elements, head, definitions)
        if parent is None:
            return None
    parent_id = head
    # A child of a slice copies the child of the sliced element when the snapshot has it.
    unsliced_parent = _SLICE.sub("", parent_id)
    if unsliced_parent != parent_id:
        source = _find(elements, f"{unsliced_parent}.{last}")
        if source is not None:
            end = _subtree_end(elements, source)
            copies = [copy.deepcopy(e) for e in elements[source:end]]
            prefix = f"{unsliced_parent}.{last}"
            for e in copies:
                e["id"] = f"{parent_id}.{last}" + str(e.get("id") or e.get("path"))[len(prefix) :]
            at = _subtree_end(elements, parent)
            elements[at:at] = copies
            return _find(elements, element_id)
    # A type-named choice element (``valueQuantity``) is its ``value[x]``
    # (https://hl7.org/fhir/R4/profiling.html#choice).
    for i in range(parent + 1, _subtree_end(elements, parent)):
        e_id = str(elements[i].get("id") or "")
        if e_id.startswith(parent_id + ".") and e_id.endswith("[x]"):
            stem = e_id[len(parent_id) + 1 : -3]
            if (
                "." not in stem
                and last.startswith(stem)
                and last[len(stem) : len(stem) + 1].isupper()
            ):
                return i
    # Otherwise expand the parent's datatype (once) and look again.
    if any(
        str(e.get("id") or "").startswith(parent_id + ".")
        for e in elements[parent : _subtree_end(elements, parent)]
    ):
        return None
    types = elements[parent].get("type") or []
    if len(types) != 1:
        return None
    type_sd = definitions.structure_definition(
        "http://hl7.org/fhir/StructureDefinition/" + str(types[0].get("code"))
    )
    if type_sd is None or not (type_sd.get("snapshot") or {}).get("element"):
        return None
    type_elements = type_sd["snapshot"]["element"]
    root = str(type_elements[0].get("path"))
    parent_path = str(elements[parent].get("path"))
    children = []
    for e in type_elements[1:]:
        e = copy.deepcopy(e)
        rest = str(e.get("id") or e.get("path"))[len(root) :]
        e["id"] = parent_id + rest
        e["path"] = parent_path + str(e.get("path"))[len(root) :]
        children.append(e)
    elements[parent + 1 : parent + 1] = children
    return _find(elements, element_id)


def _merge(target: dict[str, Any], diff: dict[str, Any]) -> None:
    for key, value in diff.items():
        if key in ("id", "path"):
            continue
        if key in _ADDITIVE and isinstance(value, list):
            target[key] = [*(target.get(key) or []), *copy.deepcopy(value)]
        else:
            target[key] = copy.deepcopy(value)
