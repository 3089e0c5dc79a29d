"""``_summary`` and ``_elements`` on a resource (https://hl7.org/fhir/R4/search.html#summary,
https://hl7.org/fhir/R4/search.html#elements).

Pure functions on R4 JSON dicts. Which elements are "summary" and which are
mandatory comes from the field metadata of the fhir.resources R4B models
(``summary_element_property``, ``element_required``), which are generated from
the core StructureDefinitions' ``isSummary`` and ``min``. Backbone elements
(types defined inside a resource, such as ``Patient.contact``) are filtered by
their own children's flags; data types (HumanName, CodeableConcept...) are kept
whole. Subsetted resources are tagged ``SUBSETTED`` as the spec asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.backboneelement import BackboneElement

from fhir_service.fhir.models import model_class

SummaryMode = Literal["true", "text", "data", "false"]
SUMMARY_MODES: frozenset[str] = frozenset({"true", "text", "data", "count", "false"})

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "subsetted",
}
_SUBSETTED_KEY = (SUBSETTED["system"], SUBSETTED["code"])
_ALWAYS = ("resourceType", "id", "meta")


@dataclass(frozen=True, slots=True)
class ElementInfo:
    """What the definitions say of one element of a resource or backbone element."""

    name: str
    summary: bool
    required: bool
    choice: str | None
    backbone: type[Any] | None


def _backbone(annotation: Any) -> type[Any] | None:
    """The backbone model class an element holds (through Optional/List), else None."""
    stack = [annotation]
    while stack:
        item = stack.pop()
        name = getattr(item, "__name__", "")
        if name.endswith("Type") and name[0].isupper():
            try:
                cls = get_fhir_model_class(name[:-4])
            except ValueError:
                cls = None
            if isinstance(cls, type) and issubclass(cls, BackboneElement):
                return cls
        stack.extend(getattr(item, "__args__", ()))
    return None


def element_infos(cls: type[Any]) -> dict[str, ElementInfo]:
    """JSON name -> ElementInfo for the elements of a model class."""
    infos = _INFOS.get(cls)
    if infos is None:
        infos = _INFOS[cls] = _element_infos(cls)
    return infos


_INFOS: dict[type[Any], dict[str, ElementInfo]] = {}


def _element_infos(cls: type[Any]) -> dict[str, ElementInfo]:
    infos: dict[str, ElementInfo] = {}
    for key, field in cls.model_fields.items():
        extra = field.json_schema_extra
        if not isinstance(extra, dict) or not extra.get("element_property"):
            continue
        name = field.alias or key
        choice = extra.get("one_of_many")
        infos[name] = ElementInfo(
            name=name,
            summary=bool(extra.get("summary_element_property")),
            required=bool(
                field.is_required()
                or extra.get("element_required")
                or extra.get("one_of_many_required")
            ),
            choice=str(choice) if choice else None,
            backbone=_backbone(field.annotation),
        )
    return infos


def _with_extension(name: str, kept: dict[str, Any], source: dict[str, Any]) -> None:
    """Copy ``name`` and its primitive extension ``_name`` from ``source`` into ``kept``."""
    if name in source:
        kept[name] = source[name]
    if f"_{name}" in source:
        kept[f"_{name}"] = source[f"_{name}"]


def _summary_of(cls: type[Any], value: dict[str, Any]) -> dict[str, Any]:
    infos = element_infos(cls)
    kept: dict[str, Any] = {}
    for key, item in value.items():
        name = key[1:] if key.startswith("_") else key
        info = infos.get(name)
        if key in _ALWAYS:
            kept[key] = item
        elif info is None or not info.summary:
            continue
        elif info.backbone is not None and not key.startswith("_"):
            kept[key] = _filter_backbone(info.backbone, item)
        else:
            kept[key] = item
    return kept


def _filter_backbone(cls: type[Any], item: Any) -> Any:
    if isinstance(item, list):
        return [_summary_of(cls, v) if isinstance(v, dict) else v for v in item]
    if isinstance(item, dict):
        return _summary_of(cls, item)
    return item


def _tagged(resource: dict[str, Any]) -> dict[str, Any]:
    meta = dict(resource.get("meta") or {})
    tags = list(meta.get("tag") or [])
    if not any(
        isinstance(t, dict)
        and t.get("code") == "SUBSETTED"
        and t.get("system") == SUBSETTED["system"]
        for t in tags
    ):
        tags.append(dict(SUBSETTED))
    meta["tag"] = tags
    out = {k: v for k, v in resource.items() if k != "meta"}
    ordered: dict[str, Any] = {k: out.pop(k) for k in ("resourceType", "id") if k in out}
    return {**ordered, "meta": meta, **out}


def summarize(resource: dict[str, Any], mode: str) -> dict[str, Any]:
    """The resource as ``_summary=mode`` asks (``true``, ``text``, ``data``, ``false``).

    - ``true``: elements marked isSummary (recursively inside backbone elements);
    - ``text``: ``text``, ``id``, ``meta`` and the top-level mandatory elements;
    - ``data``: everything but ``text``;
    - ``false``: the whole resource.
    """
    if mode == "false":
        return resource
    cls = model_class(str(resource.get("resourceType")))
    if mode == "true":
        return _tagged(_summary_of(cls, resource))
    if mode == "data":
        return _tagged({k: v for k, v in resource.items() if k != "text"})
    if mode == "text":
        infos = element_infos(cls)
        kept: dict[str, Any] = {k: resource[k] for k in _ALWAYS if k in resource}
        if "text" in resource:
            kept["text"] = resource["text"]
        for key, item in resource.items():
            name = key[1:] if key.startswith("_") else key
            info = infos.get(name)
            if info is not None and info.required and key not in kept:
                kept[key] = item
        return _tagged(kept)
    raise ValueError(f"unknown _summary mode {mode!r}")


def select_elements(resource: dict[str, Any], elements: list[str]) -> dict[str, Any]:
    """The resource with only the named top-level elements (``_elements``), plus
    ``id``, ``meta`` and mandatory elements. A choice name such as ``value`` keeps
    whichever ``value[x]`` is present."""
    cls = model_class(str(resource.get("resourceType")))
    infos = element_infos(cls)
    wanted = set(elements)
    kept: dict[str, Any] = {}
    for key, item in resource.items():
        name = key[1:] if key.startswith("_") else key
        info = infos.get(name)
        if (
            key in _ALWAYS
            or name in wanted
            or (info is not None and (info.required or info.choice in wanted))
        ):
            kept[key] = item
    return _tagged(kept)


def unknown_elements(resource_type: str, elements: list[str]) -> list[str]:
    """Names in ``elements`` that are no top-level element (nor choice) of the type."""
    infos = element_infos(model_class(resource_type))
    choices = {info.choice for info in infos.values() if info.choice}
    return [e for e in elements if e not in infos and e not in choices and e not in _ALWAYS]
