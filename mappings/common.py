"""Data-type builders shared by the mapping modules.

CodeableConcept (https://hl7.org/fhir/R4/datatypes.html#CodeableConcept),
Quantity with UCUM (https://hl7.org/fhir/R4/datatypes.html#Quantity), dateTime
from relative times (https://hl7.org/fhir/R4/datatypes.html#dateTime), the
data-absent-reason extension
(https://hl7.org/fhir/R4/extension-data-absent-reason.html) and Annotation
(https://hl7.org/fhir/R4/datatypes.html#Annotation).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from mappings.case.model import INTENT_CODES, Case
from mappings.case.timing import Duration, RelativeTime
from mappings.case.types import BodySite, Coded, ExplicitCode, Quantity
from mappings.context import MappingContext
from mappings.terminology import codes

UCUM_SYSTEM = "http://unitsofmeasure.org"
DATA_ABSENT_REASON = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
"""https://hl7.org/fhir/R4/extension-data-absent-reason.html"""
MCODE = "http://hl7.org/fhir/us/mcode/StructureDefinition/"
"""Base of the mCODE STU4 profile URLs (https://hl7.org/fhir/us/mcode/STU4/)."""

LATERALITY_QUALIFIER = MCODE + "mcode-laterality-qualifier"
"""https://hl7.org/fhir/us/mcode/STU4/StructureDefinition-mcode-laterality-qualifier.html"""

PROJECT_EXTENSION = "urn:fhir-service:StructureDefinition:"
"""Base of the project's own extensions; their StructureDefinitions are in
mappings/definitions/ (docs/mapping.md, "Project extensions")."""
PROCEDURE_DURATION = PROJECT_EXTENSION + "procedure-duration"
"""How long a procedure lasted, as a Duration, when the report gives its length but no
clock times (R4 Procedure.performedPeriod needs both ends as dateTimes)."""

RELATIVE_TIME = PROJECT_EXTENSION + "relative-time"
"""On a date computed from a time relative to day 0: the time as recorded, the anchor and
the date the anchor was given (mappings/definitions/build.py)."""

_DURATION_UNITS = {"min": "minutes", "h": "hours", "d": "days", "wk": "weeks", "mo": "months"}


class _HasCodes(Protocol):
    text: str
    codes: list[str | ExplicitCode]


def codings(refs: Iterable[str | ExplicitCode]) -> list[dict[str, str]]:
    """FHIR Codings of ``prefix:code`` references (from the code tables) and of codes
    written out in the case file (as written)."""
    return [
        ref.coding() if isinstance(ref, ExplicitCode) else codes.lookup(ref).coding()
        for ref in refs
    ]


def concept(item: _HasCodes | Coded, text: str | None = None) -> dict[str, Any]:
    """A CodeableConcept from an item with ``text`` and ``codes`` (text always kept)."""
    cc: dict[str, Any] = {}
    coding = codings(item.codes)
    if coding:
        cc["coding"] = coding
    cc["text"] = text if text is not None else item.text
    return cc


def text_concept(text: str) -> dict[str, Any]:
    """A CodeableConcept with text only (no code in the tables)."""
    return {"text": text}


def body_site(site: BodySite) -> dict[str, Any]:
    """A body site as a CodeableConcept; a coded laterality goes in mCODE's laterality
    qualifier extension, and the text always names it."""
    cc = concept(site)
    if site.laterality is not None:
        if site.laterality.codes:
            qualifier = {
                "url": LATERALITY_QUALIFIER,
                "valueCodeableConcept": concept(site.laterality),
            }
            cc = {"extension": [qualifier], **cc}
        cc["text"] = f"{site.text} ({site.laterality.text})"
    return cc


def quantity(q: Quantity) -> dict[str, Any]:
    """A UCUM Quantity; ``approximate`` becomes comparator-free (noted by the caller)."""
    entry = codes.table("ucum").get(q.unit)
    return {
        "value": number(q.value),
        "unit": entry.display if entry is not None else q.unit,
        "system": UCUM_SYSTEM,
        "code": q.unit,
    }


def ucum_quantity(value: float, unit: str, shown_unit: str | None = None) -> dict[str, Any]:
    """A UCUM Quantity from a value and UCUM code; ``shown_unit`` is the unit as printed."""
    return {
        "value": number(value),
        "unit": shown_unit or unit,
        "system": UCUM_SYSTEM,
        "code": unit,
    }


def duration_quantity(d: Duration) -> dict[str, Any]:
    """A Duration/Age-shaped Quantity from a case duration."""
    return ucum_quantity(d.value, d.unit, _DURATION_UNITS.get(d.unit, "years"))


def number(value: float) -> int | float:
    """``21.0`` -> ``21``: whole numbers as integers in JSON."""
    return int(value) if float(value).is_integer() else value


def when(rt: RelativeTime | None, ctx: MappingContext) -> str | None:
    """The ISO date of a relative time, or None when the report gives no date."""
    if rt is None:
        return None
    day = rt.resolve(ctx.anchor_date)
    return day.isoformat() if day is not None else None


def derived_ext(recorded: str, ctx: MappingContext) -> dict[str, Any]:
    """The relative-time extension: ``recorded`` (e.g. ``month +9``), day 0 and its date."""
    parts: list[dict[str, Any]] = [{"url": "relativeTime", "valueString": recorded}]
    if ctx.anchor_event:
        parts.append({"url": "anchor", "valueString": ctx.anchor_event})
    parts.append({"url": "anchorDate", "valueDate": ctx.anchor_date.isoformat()})
    return {"url": RELATIVE_TIME, "extension": parts}


def derived_mark(recorded: str, ctx: MappingContext) -> dict[str, Any]:
    """The primitive's extension element (``_effectiveDateTime``) marking a derived date."""
    return {"extension": [derived_ext(recorded, ctx)]}


def put_date(
    resource: dict[str, Any],
    element: str,
    rt: RelativeTime | None,
    ctx: MappingContext,
    recorded: str | None = None,
) -> str | None:
    """Set ``element`` to the date of ``rt`` and mark it derived (``_element``); return it.

    Nothing is set when ``rt`` resolves to no date. ``recorded`` overrides the relative
    time quoted in the mark (e.g. ``day 0 + 4 d`` for an end computed from a length).
    """
    value = when(rt, ctx)
    if value is not None and rt is not None:
        resource[element] = value
        resource[f"_{element}"] = derived_mark(recorded or str(rt), ctx)
    return value


def absent_date_ext() -> dict[str, Any]:
    """The primitive extension saying a required date is unknown (``_effectiveDateTime``)."""
    return {"extension": [{"url": DATA_ABSENT_REASON, "valueCode": "unknown"}]}


def time_text(rt: RelativeTime) -> str:
    """How the report places a time, e.g. ``after day 0 (no date given)``."""
    if not rt.is_known:
        return f"{rt} (no date given)"
    if rt.approximate:
        return f"{rt} (approximate)"
    return str(rt)


def time_note(rt: RelativeTime) -> dict[str, str]:
    """An Annotation quoting the report's relative time."""
    return {"text": f"Time in the report: {time_text(rt)}"}


def note(text: str) -> dict[str, str]:
    """An Annotation with ``text``."""
    return {"text": text}


def set_datetime(
    resource: dict[str, Any], element: str, rt: RelativeTime | None, ctx: MappingContext
) -> None:
    """Set ``element`` (e.g. ``effectiveDateTime``) from ``rt``.

    An unknown date gets the data-absent-reason extension on the primitive and a
    note quoting the report's time; an approximate date gets a note too.
    """
    if put_date(resource, element, rt, ctx) is None:
        resource[f"_{element}"] = absent_date_ext()
    if rt is not None and (not rt.is_known or rt.approximate):
        resource.setdefault("note", []).append(time_note(rt))


def patient_ref(case: Case, ctx: MappingContext) -> dict[str, Any]:
    """The Reference to the case's Patient."""
    return ctx.reference("Patient", case.patient.key)


def profile(name: str) -> dict[str, list[str]]:
    """``meta`` claiming the mCODE STU4 profile ``name`` (e.g. ``mcode-tumor``)."""
    return {"profile": [MCODE + name]}


# Which resource type each kind of case fact becomes (docs/mapping.md), by the path of
# the fact in the case file: (section,) for top-level items, (section, field) for nested.
_TYPES: dict[tuple[str, ...], str] = {
    ("history",): "Condition",
    ("presentation", "symptoms"): "Condition",
    ("presentation", "exam_findings"): "Condition",
    ("labs",): "Observation",
    ("imaging",): "DiagnosticReport",
    ("imaging", "findings"): "Observation",
    ("diagnoses",): "Condition",
    ("procedures",): "Procedure",
    ("procedures", "measurements"): "Observation",
    ("procedures", "transfusions"): "Procedure",
    ("procedures", "devices"): "Device",
    ("procedures", "findings"): "Observation",
    ("procedures", "complications"): "Condition",
    ("encounters",): "Encounter",
    ("encounters", "activities"): "Procedure",
    ("pathology",): "DiagnosticReport",
    ("pathology", "specimen"): "Specimen",
    ("pathology", "findings"): "Observation",
    ("pathology", "tumour_size"): "Observation",
    ("regimens",): "CarePlan",
    ("medication_courses",): "CarePlan",
    ("medication_courses", "drugs"): "MedicationRequest",
    ("radiotherapy_courses",): "Procedure",
    ("adverse_events",): "AdverseEvent",
    ("disease_status",): "Observation",
}


def resource_types(case: Case) -> dict[str, str]:
    """Fact key -> the resource type the fact becomes (facts with no resource left out)."""
    out: dict[str, str] = {case.patient.key: "Patient"}
    for path, item in case.keyed():
        names = tuple(p for p in path if isinstance(p, str))
        rtype = _TYPES.get(names)
        if rtype is not None:
            out[item.key] = rtype  # type: ignore[attr-defined]
    return out


def fact_type(case: Case, key: str) -> str | None:
    """The resource type made from the fact ``key``, or None when it becomes no resource."""
    return resource_types(case).get(key)


def fact_ref(case: Case, ctx: MappingContext, key: str) -> dict[str, Any] | None:
    """A Reference to the resource made from fact ``key``; None when it makes none."""
    rtype = fact_type(case, key)
    return ctx.reference(rtype, key) if rtype is not None else None


def fact_reference(case: Case, ctx: MappingContext, key: str) -> dict[str, Any]:
    """A Reference to the resource made from fact ``key``; KeyError if it becomes none."""
    ref = fact_ref(case, ctx, key)
    if ref is None:
        raise KeyError(f"fact {key!r} is mapped to no resource")
    return ref


def case_notes(case: Case, key: str) -> list[dict[str, str]]:
    """The case file's free notes about fact ``key``, as Annotations."""
    return [note(n.text) for n in case.notes if key in n.about]


def notes(case: Case, key: str, *texts: str | None) -> list[dict[str, str]]:
    """Annotations: the given texts (None skipped), then the case notes about ``key``."""
    return [note(t) for t in texts if t] + case_notes(case, key)


TREATMENT_INTENT = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-procedure-intent"


def intent_extension(intent: str | None) -> list[dict[str, Any]]:
    """The mCODE treatmentIntent extension (empty when the report gives no intent)."""
    if intent is None:
        return []
    cc = {"coding": codings([INTENT_CODES[intent]]), "text": intent}
    return [{"url": TREATMENT_INTENT, "valueCodeableConcept": cc}]


def period(
    start: RelativeTime | None, end: RelativeTime | None, ctx: MappingContext
) -> dict[str, Any]:
    """A Period of the known dates; data-absent-reason on the Period when neither is known."""
    value: dict[str, Any] = {}
    put_date(value, "start", start, ctx)
    put_date(value, "end", end, ctx)
    return value or absent_date_ext()


def time_notes(*times: tuple[str, RelativeTime | None]) -> list[dict[str, str]]:
    """Notes quoting unknown or approximate times, e.g. ``Start in the report: after day 0``."""
    return [
        note(f"{label} in the report: {time_text(rt)}")
        for label, rt in times
        if rt is not None and (not rt.is_known or rt.approximate)
    ]
