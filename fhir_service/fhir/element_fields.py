"""The elements of a FHIR type as the R4B models define them: JSON name, whether
it repeats, and its data type(s) (https://hl7.org/fhir/R4/json.html).

A choice element ``value[x]`` is one Element named ``value`` whose types map each
type name to its JSON key (``Quantity`` -> ``valueQuantity``), as in
https://hl7.org/fhir/R4/formats.html#choice.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from fhir_service.errors import UnknownResourceType
from fhir_service.fhir.models import model_class

Model = type[BaseModel]


@dataclass(frozen=True, slots=True)
class Element:
    """One element of a type: its name, whether it repeats, and for each FHIR type
    name it may hold, the JSON key and the model class (None for primitives)."""

    name: str
    repeats: bool
    types: dict[str, tuple[str, Model | None]]

    @property
    def keys(self) -> list[str]:
        return [key for key, _ in self.types.values()]


def _extra(field: FieldInfo) -> dict[str, Any]:
    extra = field.json_schema_extra
    return extra if isinstance(extra, dict) else {}


@cache
def _fields(cls: Model) -> dict[str, FieldInfo]:
    """Element fields of a model by JSON name (no ``_x`` primitive extension fields)."""
    fields: dict[str, FieldInfo] = cls.model_fields
    return {
        field.alias or name: field
        for name, field in fields.items()
        if _extra(field).get("element_property") and not (field.alias or "").startswith("_")
    }


def _type_of(annotation: Any) -> tuple[bool, str, Model | None]:
    """(repeats, FHIR type name, model class or None) of a field annotation."""
    repeats = False
    current = annotation
    while True:
        origin = typing.get_origin(current)
        if origin in (typing.Union, types.UnionType):
            current = next(a for a in typing.get_args(current) if a is not type(None))
        elif origin is list:
            repeats = True
            current = typing.get_args(current)[0]
        else:
            break
    if typing.get_origin(current) is typing.Annotated:
        return repeats, type(current.__metadata__[-1]).__name__, None
    if current is bool:
        return repeats, "Boolean", None
    if hasattr(current, "get_model_klass"):
        klass: Model = current.get_model_klass()
        return repeats, klass.__name__, klass
    return repeats, getattr(current, "__name__", str(current)), None


@cache
def element(cls: Model, name: str) -> Element | None:
    """The element ``name`` of the type ``cls`` (a choice by its base name or one of
    its typed keys), or None when the type has no such element."""
    fields = _fields(cls)
    field = fields.get(name)
    if field is not None:
        base = _extra(field).get("one_of_many")
        if base and base != name:
            return element(cls, base)
        repeats, type_name, klass = _type_of(field.annotation)
        return Element(name, repeats, {type_name: (name, klass)})
    choices = {key: f for key, f in fields.items() if _extra(f).get("one_of_many") == name}
    if not choices:
        return None
    typed = {key[len(name) :]: (key, _type_of(f.annotation)[2]) for key, f in choices.items()}
    return Element(name, False, typed)


def class_at(resource: dict[str, Any], location: tuple[str | int, ...]) -> Model | None:
    """The model class of the node at ``location`` (JSON keys and list indexes) in
    ``resource``; a contained or nested resource takes the class of its resourceType."""
    node: Any = resource
    cls: Model | None = _resource_class(resource)
    for step in location:
        node = node[step]
        if isinstance(step, str):
            field = _fields(cls).get(step) if cls is not None else None
            cls = _type_of(field.annotation)[2] if field is not None else None
        if isinstance(node, dict) and "resourceType" in node:
            cls = _resource_class(node)
    return cls


def _resource_class(node: dict[str, Any]) -> Model | None:
    resource_type = node.get("resourceType")
    if not isinstance(resource_type, str):
        return None
    try:
        return model_class(resource_type)
    except UnknownResourceType:
        return None
