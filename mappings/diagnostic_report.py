"""Imaging studies and pathology reports as DiagnosticReports.

https://hl7.org/fhir/R4/diagnosticreport.html: category (v2 0074 RAD plus the DICOM
modality for imaging; LAB and SP for surgical pathology), code (LOINC where the tables
have one, otherwise text), effective time (data-absent-reason when the report gives
none), ``result`` -> the finding Observations, conclusion, and for pathology the
Specimen and the diagnoses as conclusionCode. R4 DiagnosticReport has no note: the
report's remarks (times, figures) travel in the R5 DiagnosticReport.note cross-version
extension (https://hl7.org/fhir/R4/versions.html#extensions).
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.resource import Resource

from mappings.case.model import Case, Diagnosis, ImagingStudy, PathologyReport
from mappings.common import concept, fact_ref, notes, patient_ref, set_datetime
from mappings.context import MappingContext

V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
"""Diagnostic service section (https://terminology.hl7.org/CodeSystem-v2-0074.html)."""
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
"""DICOM modality codes (https://hl7.org/fhir/R4/codesystem-dicom-dcim.html)."""
NOTE_EXTENSION = "http://hl7.org/fhir/5.0/StructureDefinition/extension-DiagnosticReport.note"


def map_diagnostic_reports(case: Case, ctx: MappingContext) -> list[Resource]:
    """One DiagnosticReport per imaging study and per pathology report."""
    out = [_imaging(case, ctx, s) for s in case.imaging]
    out += [_pathology(case, ctx, p) for p in case.pathology]
    return [DiagnosticReport.model_validate(r) for r in out]


def _section(code: str) -> dict[str, Any]:
    return {"coding": [{"system": V2_0074, "code": code}]}


def _base(case: Case, ctx: MappingContext, key: str, item: Any) -> dict[str, Any]:
    return {
        "resourceType": "DiagnosticReport",
        "id": ctx.resource_id("DiagnosticReport", key),
        "identifier": [ctx.identifier("DiagnosticReport", key)],
        "status": "final",
        "code": concept(item),
        "subject": patient_ref(case, ctx),
    }


def _with_notes(data: dict[str, Any]) -> dict[str, Any]:
    """Move the collected Annotations into the note extension."""
    remarks = data.pop("note", [])
    if remarks:
        data["extension"] = [{"url": NOTE_EXTENSION, "valueAnnotation": r} for r in remarks]
    return data


def _imaging(case: Case, ctx: MappingContext, s: ImagingStudy) -> dict[str, Any]:
    data = _base(case, ctx, s.key, s)
    data["category"] = [
        _section("RAD"),
        {"coding": [{"system": DICOM, "code": s.modality}], "text": s.modality},
    ]
    sites = "; ".join(b.text for b in s.body_sites)
    reasons = [r for r in (fact_ref(case, ctx, k) for k in s.reasons) if r is not None]
    reason_text = "; ".join(getattr(case.index().get(k), "text", k) for k in s.reasons)
    data["note"] = notes(
        case,
        s.key,
        f"Body sites: {sites}" if sites else None,
        f"Figures: {', '.join(s.figures)}" if s.figures else None,
        f"Reason: {reason_text}" if reasons else None,
        s.note,
    )
    set_datetime(data, "effectiveDateTime", s.when, ctx)
    if s.findings:
        data["result"] = [ctx.reference("Observation", f.key) for f in s.findings]
    if s.conclusion:
        data["conclusion"] = s.conclusion
    return _with_notes(data)


def _pathology(case: Case, ctx: MappingContext, p: PathologyReport) -> dict[str, Any]:
    data = _base(case, ctx, p.key, p)
    data["category"] = [_section("LAB"), _section("SP")]
    data["note"] = notes(
        case, p.key, f"Figures: {', '.join(p.figures)}" if p.figures else None, p.note
    )
    set_datetime(data, "effectiveDateTime", p.when, ctx)
    if p.specimen is not None:
        data["specimen"] = [ctx.reference("Specimen", p.specimen.key)]
    results = [ctx.reference("Observation", f.key) for f in p.findings]
    if p.tumour_size is not None:
        results.append(ctx.reference("Observation", p.tumour_size.key))
    if results:
        data["result"] = results
    if p.conclusion:
        data["conclusion"] = p.conclusion
    diagnoses = [d for d in case.diagnoses if d.key in p.diagnoses]
    if diagnoses:
        data["conclusionCode"] = [_diagnosis_concept(d) for d in diagnoses]
    return _with_notes(data)


def _diagnosis_concept(d: Diagnosis) -> dict[str, Any]:
    cc = concept(d)
    if d.morphology is not None:
        cc["coding"] = cc.get("coding", []) + concept(d.morphology).get("coding", [])
    return cc
