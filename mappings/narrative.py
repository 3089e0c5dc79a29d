"""Section narrative of the case document, generated from the resources alone.

Composition.section.text (https://hl7.org/fhir/R4/composition-definitions.html#Composition.section.text)
is XHTML limited as in https://hl7.org/fhir/R4/narrative.html#xhtml, with status
``generated`` (https://hl7.org/fhir/R4/narrative.html#Narrative). Each entry is one list
item made only of the entry's own data, joined by punctuation: its text (``code.text``,
``title``…), its value, its status when the record says it did not happen as usual, and
its dates, each derived date followed by the relative time it was computed from (the
relative-time extension, docs/mapping.md). Nothing is added that the resource does not say.
"""

from __future__ import annotations

from html import escape
from typing import Any

from mappings.common import RELATIVE_TIME

JSON = dict[str, Any]
XHTML = "http://www.w3.org/1999/xhtml"
RANGE = " \u2013 "
"""Between the two ends of a period or range (an en dash, not a word)."""

_USUAL_STATUS = frozenset({"completed", "final", "finished", "active", "current", "amended"})
_DATE_ELEMENTS = (
    "onsetDateTime",
    "onsetPeriod",
    "onsetString",
    "effectiveDateTime",
    "effectivePeriod",
    "performedDateTime",
    "performedPeriod",
    "authoredOn",
    "period",
    "date",
    "occurrenceDateTime",
    "collectedDateTime",
)


def _text(concept: Any) -> str | None:
    if isinstance(concept, list):
        concept = concept[0] if concept else None
    if not isinstance(concept, dict):
        return None
    if concept.get("text"):
        return str(concept["text"])
    for coding in concept.get("coding") or []:
        if coding.get("display"):
            return str(coding["display"])
    return None


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _quantity(q: JSON) -> str:
    unit = q.get("unit") or q.get("code") or ""
    comparator = q.get("comparator", "")
    return f"{comparator}{_number(q.get('value'))} {unit}".strip()


def _value(resource: JSON) -> str | None:
    if "valueQuantity" in resource:
        return _quantity(resource["valueQuantity"])
    if "valueCodeableConcept" in resource:
        return _text(resource["valueCodeableConcept"])
    for key in ("valueString", "valueInteger", "valueDateTime"):
        if key in resource:
            return str(resource[key])
    if "valueBoolean" in resource:
        return "true" if resource["valueBoolean"] else "false"
    if "valueRange" in resource:
        low, high = resource["valueRange"].get("low"), resource["valueRange"].get("high")
        return RANGE.join(_quantity(q) for q in (low, high) if q)
    return None


def _label(resource: JSON) -> str:
    """What the entry is, in the resource's own words."""
    rtype = resource.get("resourceType")
    if rtype in ("MedicationRequest", "MedicationAdministration", "MedicationStatement"):
        label = _text(resource.get("medicationCodeableConcept")) or rtype
        dosage = resource.get("dosageInstruction") or resource.get("dosage")
        dosage_text = _dosage_text(dosage)
        return f"{label}, {dosage_text}" if dosage_text else label
    if rtype == "CarePlan":
        return str(resource.get("title") or resource.get("description") or rtype)
    if rtype == "AdverseEvent":
        return _text(resource.get("event")) or rtype
    if rtype == "Encounter":
        return _text(resource.get("type")) or _text(resource.get("class")) or rtype
    if rtype == "BodyStructure":
        return str(resource.get("description") or _text(resource.get("morphology")) or rtype)
    if rtype == "DocumentReference":
        return str(resource.get("description") or _text(resource.get("type")) or rtype)
    label = _text(resource.get("code")) or _text(resource.get("type")) or str(rtype)
    value = _value(resource)
    if value:
        label = f"{label}: {value}"
    if rtype == "DiagnosticReport" and resource.get("conclusion"):
        label = f"{label}: {resource['conclusion']}"
    return label


def _dosage_text(dosage: Any) -> str | None:
    if isinstance(dosage, list):
        dosage = dosage[0] if dosage else None
    if isinstance(dosage, dict) and dosage.get("text"):
        return str(dosage["text"])
    return None


def relative_time(element: Any) -> str | None:
    """The relative time quoted by the relative-time extension of a primitive's ``_element``."""
    if not isinstance(element, dict):
        return None
    for ext in element.get("extension") or []:
        if ext.get("url") == RELATIVE_TIME:
            for part in ext.get("extension") or []:
                if part.get("url") == "relativeTime":
                    return str(part.get("valueString"))
    return None


def _date(holder: JSON, key: str) -> str | None:
    value = holder.get(key)
    if not isinstance(value, str):
        return None
    recorded = relative_time(holder.get(f"_{key}"))
    return f"{value} ({recorded})" if recorded else value


def _when(resource: JSON) -> str | None:
    for key in _DATE_ELEMENTS:
        value = resource.get(key)
        if isinstance(value, dict):
            start, end = _date(value, "start"), _date(value, "end")
            if start or end:
                return f"{start or ''}{RANGE}{end}".strip() if end else start
        elif isinstance(value, str):
            return _date(resource, key)
    return None


def entry_line(resource: JSON) -> str:
    """One entry as plain text: what it is, its status when unusual, when."""
    line = _label(resource)
    status = resource.get("status")
    if isinstance(status, str) and status not in _USUAL_STATUS:
        line = f"{line} ({status})"
    when = _when(resource)
    return f"{line}; {when}" if when else line


def narrative(resources: list[JSON]) -> JSON:
    """A generated Narrative listing ``resources``, one item each."""
    items = "".join(f"<li>{escape(entry_line(r), quote=False)}</li>" for r in resources)
    return {"status": "generated", "div": f'<div xmlns="{XHTML}"><ul>{items}</ul></div>'}
