"""Conditions of the case: cancers, history, presenting symptoms, findings, complications.

https://hl7.org/fhir/R4/condition.html. Primary cancers claim mCODE
mcode-primary-cancer-condition, metastases mcode-secondary-cancer-condition
(https://hl7.org/fhir/us/mcode/STU4/StructureDefinition-mcode-primary-cancer-condition.html,
https://hl7.org/fhir/us/mcode/STU4/StructureDefinition-mcode-secondary-cancer-condition.html):
code, bodySite, the histology-morphology-behavior extension, US Core category, subject.
Times the report does not date are written as notes, never as invented dates.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.resource import Resource

from mappings.case.model import (
    Case,
    Complication,
    Diagnosis,
    Finding,
    HistoryCondition,
    Symptom,
)
from mappings.common import (
    MCODE,
    body_site,
    concept,
    fact_ref,
    notes,
    patient_ref,
    profile,
    put_date,
    time_text,
)
from mappings.context import MappingContext

CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
"""https://hl7.org/fhir/R4/codesystem-condition-clinical.html"""
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
"""https://hl7.org/fhir/R4/codesystem-condition-ver-status.html"""
CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
"""https://hl7.org/fhir/R4/codesystem-condition-category.html"""
PROBLEM = "problem-list-item"
ENCOUNTER_DIAGNOSIS = "encounter-diagnosis"
HISTOLOGY = MCODE + "mcode-histology-morphology-behavior"
RELATED_CONDITION = "http://hl7.org/fhir/StructureDefinition/condition-related"
"""https://hl7.org/fhir/R4/extension-condition-related.html (mCODE relatedPrimaryCancerCondition)"""
PRIMARY_PROFILE = "mcode-primary-cancer-condition"
SECONDARY_PROFILE = "mcode-secondary-cancer-condition"


def map_conditions(case: Case, ctx: MappingContext) -> list[Resource]:
    """Every Condition: history, symptoms, exam findings, diagnoses, complications."""
    out: list[dict[str, Any]] = [_history(case, ctx, h) for h in case.history]
    if case.presentation is not None:
        pres = case.presentation
        for s in pres.symptoms:
            out.append(_symptom(case, ctx, s, pres.note, str(pres.when)))
        for f in pres.exam_findings:
            out.append(_exam_finding(case, ctx, f, pres.note))
    out.extend(_diagnosis(case, ctx, d) for d in case.diagnoses)
    for proc in case.procedures:
        out.extend(_complication(case, ctx, c, proc.text) for c in proc.complications)
    return [Condition.model_validate(c) for c in out]


def _status(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _category(code: str) -> list[dict[str, Any]]:
    return [_status(CATEGORY, code)]


def _base(case: Case, ctx: MappingContext, key: str, item: Any, category: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": ctx.resource_id("Condition", key),
        "identifier": [ctx.identifier("Condition", key)],
        "category": _category(category),
        "code": concept(item),
        "subject": patient_ref(case, ctx),
    }


def _history(case: Case, ctx: MappingContext, h: HistoryCondition) -> dict[str, Any]:
    data = _base(case, ctx, h.key, h, PROBLEM)
    data["clinicalStatus"] = _status(CLINICAL, h.clinical_status)
    data["verificationStatus"] = _status(VERIFICATION, h.verification_status)
    if h.body_sites:
        data["bodySite"] = [body_site(s) for s in h.body_sites]
    if h.duration is not None:
        as_of = f" as of {time_text(h.as_of)}" if h.as_of is not None else ""
        data["onsetString"] = f"Duration {h.duration}{as_of}"
    data["note"] = notes(case, h.key, h.note)
    return _clean(data)


def _symptom(
    case: Case, ctx: MappingContext, s: Symptom, pres_note: str | None, pres_when: str
) -> dict[str, Any]:
    data = _base(case, ctx, s.key, s, ENCOUNTER_DIAGNOSIS)
    data["verificationStatus"] = _status(VERIFICATION, "confirmed")
    if s.body_sites:
        data["bodySite"] = [body_site(b) for b in s.body_sites]
    if s.severity is not None:
        data["severity"] = {"text": s.severity}
    if s.duration is not None:
        data["onsetString"] = f"{s.duration} before the presentation ({pres_when})"
    data["note"] = notes(
        case,
        s.key,
        f"Presenting symptom; lasted {s.duration} at presentation" if s.duration else None,
        s.note,
        pres_note,
    )
    return _clean(data)


def _exam_finding(
    case: Case, ctx: MappingContext, f: Finding, pres_note: str | None
) -> dict[str, Any]:
    data = _base(case, ctx, f.key, f, ENCOUNTER_DIAGNOSIS)
    data["verificationStatus"] = _status(VERIFICATION, "confirmed")
    if f.body_sites:
        data["bodySite"] = [body_site(b) for b in f.body_sites]
    data["note"] = notes(case, f.key, "Finding on physical examination at presentation", f.note)
    return _clean(data)


def _diagnosis(case: Case, ctx: MappingContext, d: Diagnosis) -> dict[str, Any]:
    data = _base(case, ctx, d.key, d, PROBLEM)
    extensions: list[dict[str, Any]] = []
    if d.morphology is not None:
        extensions.append({"url": HISTOLOGY, "valueCodeableConcept": concept(d.morphology)})
    if d.role == "primary":
        data["meta"] = profile(PRIMARY_PROFILE)
    elif d.role == "secondary" and d.primary is not None:
        data["meta"] = profile(SECONDARY_PROFILE)
        extensions.append(
            {"url": RELATED_CONDITION, "valueReference": ctx.reference("Condition", d.primary)}
        )
    if extensions:
        data["extension"] = extensions
    data["clinicalStatus"] = _status(CLINICAL, d.clinical_status)
    data["verificationStatus"] = _status(VERIFICATION, d.verification_status)
    if d.body_sites:
        data["bodySite"] = [body_site(s) for s in d.body_sites]
    onset = put_date(data, "onsetDateTime", d.onset, ctx)
    if onset is None and d.onset_age is not None:
        data["onsetAge"] = {
            "value": d.onset_age.value,
            "unit": d.onset_age.unit,
            "system": "http://unitsofmeasure.org",
            "code": d.onset_age.unit,
        }
    put_date(data, "recordedDate", d.recorded, ctx)
    evidence = [r for r in (fact_ref(case, ctx, k) for k in d.evidence) if r is not None]
    if evidence:
        data["evidence"] = [{"detail": evidence}]
    data["note"] = notes(
        case,
        d.key,
        f"Extent: {d.extent}" if d.extent else None,
        _time_remark("Onset", d.onset),
        _time_remark("Recorded", d.recorded),
        d.note,
    )
    return _clean(data)


def _complication(
    case: Case, ctx: MappingContext, c: Complication, procedure: str
) -> dict[str, Any]:
    data = _base(case, ctx, c.key, c, ENCOUNTER_DIAGNOSIS)
    data["verificationStatus"] = _status(VERIFICATION, "confirmed")
    put_date(data, "onsetDateTime", c.when, ctx)
    grade = f"Grade ({c.grade.scale}): {c.grade.value}" if c.grade is not None else None
    data["note"] = notes(
        case,
        c.key,
        f"Complication of: {procedure}",
        _time_remark("Onset", c.when),
        grade,
        c.note,
    )
    return _clean(data)


def _time_remark(label: str, rt: Any) -> str | None:
    """A note for a time that is not an exact date (before/after marker or approximate)."""
    if rt is None or (rt.is_known and not rt.approximate):
        return None
    return f"{label} in the report: {time_text(rt)}"


def _clean(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v not in (None, [], {})}
