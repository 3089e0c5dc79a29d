"""FHIRPath Patch: apply a ``Parameters`` resource of patch operations to a
resource's JSON (https://hl7.org/fhir/R4/fhirpatch.html).

Each ``operation`` parameter has the parts ``type`` (add | insert | delete |
replace | move), ``path`` (a FHIRPath expression) and, as the type needs,
``name``, ``value``, ``index``, ``source`` and ``destination``. A value is a
``value[x]``, a ``resource``, or nested ``part``s naming the elements of a
complex value (https://hl7.org/fhir/R4/fhirpatch.html#concept). Operations apply
in order to a copy; the first failure stops the patch.

Parameters that are not a well-formed patch raise InvalidRequest (400); a
well-formed patch that cannot apply to this resource (a path selecting several
elements, an index out of range, a value of the wrong type) raises Unprocessable
(422). Whether the result is a valid resource is the caller's check, as for any write.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, TypeGuard

from fhir_service.errors import InvalidRequest, Unprocessable
from fhir_service.fhir.element_fields import Element, Model, class_at, element
from fhir_service.fhir.fhirpath_locate import Location, compile_path, get, select, select_parent

JSON = dict[str, Any]

_PARTS = {
    "add": {"path", "name", "value"},
    "insert": {"path", "index", "value"},
    "delete": {"path"},
    "replace": {"path", "value"},
    "move": {"path", "source", "destination"},
}
"""The parts each operation type needs besides ``type``."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One parsed ``operation`` parameter; ``where`` is its place in the Parameters."""

    where: str
    type: str
    path: str
    parts: dict[str, JSON]

    def integer(self, name: str) -> int:
        value: int = self.parts[name]["valueInteger"]
        return value


def is_fhirpath_patch(document: object) -> TypeGuard[JSON]:
    """True when a PATCH body or Bundle entry resource is a FHIRPath Patch."""
    return isinstance(document, dict) and document.get("resourceType") == "Parameters"


def apply_fhirpath_patch(resource: JSON, parameters: JSON) -> JSON:
    """The resource after the patch; ``resource`` itself is left unchanged."""
    operations = parse_operations(parameters)
    patched = copy.deepcopy(resource)
    for operation in operations:
        _APPLY[operation.type](patched, operation)
    return patched


# ------------------------------------------------------------------ parsing


def parse_operations(parameters: JSON) -> list[Operation]:
    """The operations of a FHIRPath Patch; InvalidRequest names what is malformed."""
    if not is_fhirpath_patch(parameters):
        raise InvalidRequest("A FHIRPath Patch must be a Parameters resource")
    entries = parameters.get("parameter", [])
    if not isinstance(entries, list):
        raise InvalidRequest(
            "Parameters.parameter must be an array", expression="Parameters.parameter"
        )
    return [_operation(entry, f"Parameters.parameter[{i}]") for i, entry in enumerate(entries)]


def _operation(entry: Any, where: str) -> Operation:
    if not isinstance(entry, dict) or entry.get("name") != "operation":
        raise InvalidRequest(
            "Every parameter of a FHIRPath Patch must be named 'operation'", expression=where
        )
    parts = _parts(entry, where)
    op_type = _typed(parts, "type", "valueCode", str, where)
    if op_type not in _PARTS:
        raise InvalidRequest(
            f"Unknown patch operation type '{op_type}' (add, insert, delete, replace, move)",
            expression=f"{where}.part",
        )
    needed = _PARTS[op_type]
    missing = sorted(needed - parts.keys())
    extra = sorted(parts.keys() - needed - {"type"})
    if missing or extra:
        problems = [f"missing {', '.join(missing)}"] if missing else []
        problems += [f"unexpected {', '.join(extra)}"] if extra else []
        raise InvalidRequest(
            f"The '{op_type}' operation has {'; '.join(problems)}", expression=f"{where}.part"
        )
    path = _typed(parts, "path", "valueString", str, where)
    compile_path(path, f"{where}.part")
    if "name" in parts:
        _typed(parts, "name", "valueString", str, where)
    for name in ("index", "source", "destination"):
        if name in parts:
            _typed(parts, name, "valueInteger", int, where)
    if "value" in parts:
        _check_value(parts["value"], f"{where}.part")
    return Operation(where, op_type, path, parts)


def _parts(entry: JSON, where: str) -> dict[str, JSON]:
    parts = entry.get("part")
    if not isinstance(parts, list) or not all(
        isinstance(p, dict) and isinstance(p.get("name"), str) for p in parts
    ):
        raise InvalidRequest(
            "A patch operation needs an array of named parts", expression=f"{where}.part"
        )
    by_name: dict[str, JSON] = {}
    for part in parts:
        if part["name"] in by_name:
            raise InvalidRequest(
                f"The part '{part['name']}' is given twice", expression=f"{where}.part"
            )
        by_name[part["name"]] = part
    return by_name


def _typed(parts: dict[str, JSON], name: str, key: str, kind: type, where: str) -> Any:
    value = parts[name].get(key)
    if not isinstance(value, kind) or isinstance(value, bool) or value == "":
        raise InvalidRequest(f"The part '{name}' needs a {key}", expression=f"{where}.part")
    return value


def _value_keys(part: JSON) -> list[str]:
    return [k for k in part if (k.startswith("value") and len(k) > 5) or k in ("resource", "part")]


def _check_value(part: JSON, where: str) -> None:
    """A value part holds exactly one of value[x], resource or nested named parts."""
    keys = _value_keys(part)
    if len(keys) != 1:
        raise InvalidRequest(
            f"The part '{part['name']}' needs exactly one of value[x], resource or part",
            expression=where,
        )
    if keys[0] == "part":
        nested = part["part"]
        if not isinstance(nested, list) or not nested:
            raise InvalidRequest(f"The part '{part['name']}' has no nested parts", expression=where)
        for sub in nested:
            if not isinstance(sub, dict) or not isinstance(sub.get("name"), str):
                raise InvalidRequest("Every nested part needs a name", expression=where)
            _check_value(sub, where)
    elif keys[0] == "resource" and not isinstance(part["resource"], dict):
        raise InvalidRequest(
            f"The part '{part['name']}' has a resource that is not an object", expression=where
        )


# ------------------------------------------------------------------ values


def _value(part: JSON, found: Element, what: str, where: str) -> tuple[str, Any]:
    """(JSON key, JSON value) for a value part placed in the element ``found``."""
    key = _value_keys(part)[0]
    if key == "part":
        complex_types = [(k, cls) for k, cls in found.types.values() if cls is not None]
        if len(found.types) != 1 or not complex_types:
            raise Unprocessable(f"{what} needs a value[x], not nested parts", expression=where)
        json_key, cls = complex_types[0]
        return json_key, _object(part["part"], cls, what, where)
    type_name = "Resource" if key == "resource" else key[len("value") :]
    if type_name not in found.types:
        raise Unprocessable(
            f"A {type_name} value does not fit {what} ({' | '.join(found.types)})",
            expression=where,
        )
    return found.types[type_name][0], part[key]


def _object(parts: list[JSON], cls: Model, what: str, where: str) -> JSON:
    """A complex value built from nested parts, one per element of ``cls``."""
    built: JSON = {}
    for part in parts:
        found = element(cls, part["name"])
        inner = f"{what}.{part['name']}"
        if found is None:
            raise Unprocessable(f"{cls.__name__} has no element '{part['name']}'", expression=where)
        key, value = _value(part, found, inner, where)
        if found.repeats:
            built.setdefault(key, []).append(value)
        elif any(k in built for k in found.keys):
            raise Unprocessable(f"{inner} is given twice but holds one value", expression=where)
        else:
            built[key] = value
    return built


# ------------------------------------------------------------------ operations


def _one(resource: JSON, operation: Operation, purpose: str) -> Location:
    locations = select(resource, operation.path, f"{operation.where}.part")
    if len(locations) != 1:
        raise Unprocessable(
            f"The path '{operation.path}' selects {len(locations)} elements; {purpose} needs one",
            expression=f"{operation.where}.part",
        )
    return locations[0]


def _element_of(resource: JSON, owner: Location, name: str, operation: Operation) -> Element:
    cls = class_at(resource, owner)
    found = element(cls, name) if cls is not None else None
    if found is None:
        raise Unprocessable(
            f"{cls.__name__ if cls else 'The element'} has no element '{name}'",
            expression=f"{operation.where}.part",
        )
    return found


def _add(resource: JSON, operation: Operation) -> None:
    """add: put ``value`` as ``name`` inside the element at ``path``."""
    location = _one(resource, operation, "add")
    node = get(resource, location)
    name = operation.parts["name"]["valueString"]
    if not isinstance(node, dict):
        raise Unprocessable(
            f"The path '{operation.path}' selects a primitive; add needs an element to add into",
            expression=f"{operation.where}.part",
        )
    found = _element_of(resource, location, name, operation)
    key, value = _value(operation.parts["value"], found, name, f"{operation.where}.part")
    if found.repeats:
        node.setdefault(key, []).append(value)
        _ext_list(node, key, lambda ext: ext.append(None))
    elif any(k in node for k in found.keys):
        raise Unprocessable(
            f"'{name}' already has a value at '{operation.path}'; use replace",
            expression=f"{operation.where}.part",
        )
    else:
        node[key] = value


def _insert(resource: JSON, operation: Operation) -> None:
    """insert: put ``value`` at ``index`` (0-based) of the list at ``path``."""
    node, key, found = _list_at(resource, operation)
    items = node.get(key, [])
    index = operation.integer("index")
    if not 0 <= index <= len(items):
        raise Unprocessable(
            f"Index {index} is out of range: '{operation.path}' has {len(items)} elements",
            expression=f"{operation.where}.part",
        )
    _, value = _value(operation.parts["value"], found, found.name, f"{operation.where}.part")
    items.insert(index, value)
    node[key] = items
    _ext_list(node, key, lambda ext: ext.insert(index, None))


def _move(resource: JSON, operation: Operation) -> None:
    """move: move the list item at ``source`` to ``destination`` (both 0-based)."""
    node, key, _ = _list_at(resource, operation)
    items = node.get(key, [])
    source, destination = operation.integer("source"), operation.integer("destination")
    for label, index in (("source", source), ("destination", destination)):
        if not 0 <= index < len(items):
            raise Unprocessable(
                f"The {label} index {index} is out of range: '{operation.path}' has "
                f"{len(items)} elements",
                expression=f"{operation.where}.part",
            )
    items.insert(destination, items.pop(source))
    _ext_list(node, key, lambda ext: ext.insert(destination, ext.pop(source)))


def _list_at(resource: JSON, operation: Operation) -> tuple[JSON, str, Element]:
    owner, name = select_parent(resource, operation.path, f"{operation.where}.part")
    found = _element_of(resource, owner, name, operation)
    if not found.repeats:
        raise Unprocessable(
            f"'{operation.path}' is not a list; {operation.type} needs one",
            expression=f"{operation.where}.part",
        )
    return get(resource, owner), found.keys[0], found


def _delete(resource: JSON, operation: Operation) -> None:
    """delete: remove the element at ``path``; nothing to do when it selects none."""
    locations = select(resource, operation.path, f"{operation.where}.part")
    if len(locations) > 1:
        raise Unprocessable(
            f"The path '{operation.path}' selects {len(locations)} elements; delete "
            "removes only one",
            expression=f"{operation.where}.part",
        )
    if locations:
        if locations[0] == ():
            raise Unprocessable(
                "A patch cannot delete the resource itself", expression=f"{operation.where}.part"
            )
        _remove(resource, locations[0])


def _replace(resource: JSON, operation: Operation) -> None:
    """replace: put ``value`` in place of the element at ``path``."""
    location = _one(resource, operation, "replace")
    if location == ():
        raise Unprocessable(
            "A patch cannot replace the resource itself", expression=f"{operation.where}.part"
        )
    index = location[-1] if isinstance(location[-1], int) else None
    key_at = -2 if index is not None else -1
    owner, key = location[:key_at], str(location[key_at])
    found = _element_of(resource, owner, key, operation)
    new_key, value = _value(operation.parts["value"], found, found.name, f"{operation.where}.part")
    node = get(resource, owner)
    if index is not None:
        node[key][index] = value
        return
    if new_key != key:
        node.pop(key)
        node.pop(f"_{key}", None)
    node[new_key] = value


_APPLY = {"add": _add, "insert": _insert, "delete": _delete, "replace": _replace, "move": _move}


# ------------------------------------------------------------------ helpers


def _ext_list(node: JSON, key: str, change: Any) -> None:
    """Keep a primitive list's ``_key`` extension list aligned with the list."""
    ext = node.get(f"_{key}")
    if isinstance(ext, list):
        change(ext)


def _remove(resource: JSON, location: Location) -> None:
    """Remove the node at ``location`` with its primitive extension, then any
    array or object left empty (JSON FHIR has no empty arrays or objects)."""
    last = location[-1]
    if isinstance(last, int):
        owner_location, key = location[:-2], str(location[-2])
        owner = get(resource, owner_location)
        del owner[key][last]
        ext = owner.get(f"_{key}")
        if isinstance(ext, list) and last < len(ext):
            del ext[last]
        if not owner[key]:
            owner.pop(key)
            owner.pop(f"_{key}", None)
    else:
        owner_location = location[:-1]
        owner = get(resource, owner_location)
        owner.pop(last)
        owner.pop(f"_{last}", None)
    if owner_location and not owner:
        _remove(resource, owner_location)
