"""Encounters: consultations, hospital stays, ICU stays, and their notes.

Encounter (https://hl7.org/fhir/R4/encounter.html): ``class`` from v3 ActCode
(https://terminology.hl7.org/ValueSet-v3-ActEncounterCode.html), ``type`` with the
report's text, ``period`` from the known dates (an end from start + length),
``length`` as a UCUM Duration, ``partOf`` the enclosing stay. R4 Encounter has no
``note``: an encounter's note and the report's wording of unknown times go to a
DocumentReference (https://hl7.org/fhir/R4/documentreference.html) whose
``context.encounter`` is the Encounter. Decisions of a consultation become a
CarePlan (mappings/care_plan.py).
"""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.encounter import Encounter as FhirEncounter
from fhir.resources.R4B.resource import Resource

from mappings.case.model import Case, Encounter
from mappings.case.timing import Duration
from mappings.common import (
    concept,
    derived_mark,
    duration_quantity,
    fact_reference,
    patient_ref,
    put_date,
    time_text,
)
from mappings.context import MappingContext

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
"""v3 ActCode (https://terminology.hl7.org/CodeSystem-v3-ActCode.html), Encounter.class."""
ENCOUNTER_CLASS = {
    "consultation": ("AMB", "ambulatory"),
    "outpatient": ("AMB", "ambulatory"),
    "follow-up": ("AMB", "ambulatory"),
    "inpatient": ("IMP", "inpatient encounter"),
    "icu": ("IMP", "inpatient encounter"),
}
ICU_SERVICE = "Intensive care"


def note_key(enc: Encounter) -> str:
    """The fact key of the DocumentReference holding an encounter's note."""
    return f"{enc.key}-note"


def map_encounters(case: Case, ctx: MappingContext) -> list[Resource]:
    """One Encounter per encounter, plus a DocumentReference for each one with a note."""
    out: list[Resource] = []
    for enc in case.encounters:
        out.append(FhirEncounter.model_validate(_encounter(case, ctx, enc)))
        text = note_text(enc)
        if text:
            out.append(DocumentReference.model_validate(_note(case, ctx, enc, text)))
    return out


def _encounter(case: Case, ctx: MappingContext, enc: Encounter) -> dict[str, Any]:
    code, display = ENCOUNTER_CLASS[enc.kind]
    res: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": ctx.resource_id("Encounter", enc.key),
        "identifier": [ctx.identifier("Encounter", enc.key)],
        "status": "finished",
        "class": {"system": ACT_CODE, "code": code, "display": display},
        "type": [concept(enc)],
        "subject": patient_ref(case, ctx),
    }
    if enc.kind == "icu":
        res["serviceType"] = {"text": ICU_SERVICE}
    if enc.participants:
        res["participant"] = [{"type": [{"text": p}]} for p in enc.participants]
    if period := _period(enc, ctx):
        res["period"] = period
    if enc.length is not None:
        res["length"] = duration_quantity(enc.length)
    if enc.reasons:
        res["reasonReference"] = [fact_reference(case, ctx, k) for k in enc.reasons]
    if enc.part_of:
        res["partOf"] = ctx.reference("Encounter", enc.part_of)
    return res


def _period(enc: Encounter, ctx: MappingContext) -> dict[str, Any]:
    """The known dates, each marked derived; the end is start + length when only those are
    given."""
    period: dict[str, Any] = {}
    put_date(period, "start", enc.start, ctx)
    end = put_date(period, "end", enc.end, ctx)
    day = enc.start.resolve(ctx.anchor_date) if enc.start is not None else None
    length = enc.length
    if end is None and day is not None and length is not None and _whole_days(length):
        period["end"] = (day + timedelta(days=length.days())).isoformat()
        period["_end"] = derived_mark(f"{enc.start} + {length}", ctx)
    return period


def _whole_days(length: Duration) -> bool:
    """A length that moves a date by whole days (not ``~``, not hours or months)."""
    return length.unit in ("d", "wk") and not length.approximate


def note_text(enc: Encounter) -> str:
    """The encounter's note and the report's wording of its unknown times ('' if none)."""
    lines = [
        f"{label} in the report: {time_text(rt)}"
        for label, rt in (("Start", enc.start), ("End", enc.end))
        if rt is not None and (not rt.is_known or rt.approximate)
    ]
    if enc.length is not None and enc.length.approximate:
        lines.append(f"Length in the report: {enc.length}")
    if enc.note:
        lines.append(enc.note)
    return "\n".join(lines)


def _note(case: Case, ctx: MappingContext, enc: Encounter, text: str) -> dict[str, Any]:
    key = note_key(enc)
    return {
        "resourceType": "DocumentReference",
        "id": ctx.resource_id("DocumentReference", key),
        "identifier": [ctx.identifier("DocumentReference", key)],
        "status": "current",
        "type": {"text": "Encounter note"},
        "subject": patient_ref(case, ctx),
        "description": f"Note on: {enc.text}",
        "content": [
            {
                "attachment": {
                    "contentType": "text/plain; charset=utf-8",
                    "data": base64.b64encode(text.encode("utf-8")).decode("ascii"),
                }
            }
        ],
        "context": {"encounter": [ctx.reference("Encounter", enc.key)]},
    }
