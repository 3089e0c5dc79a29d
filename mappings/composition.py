"""The case as a Composition: the first entry of the case's FHIR document.

Composition (https://hl7.org/fhir/R4/composition.html), status ``final``, type LOINC
34133-9 "Summary of episode note" (the C-CDA Continuity of Care Document type), subject
the Patient, author the Device standing for this mapping software (mappings.provenance),
``date`` the case's last dated fact (as the Provenance's ``recorded``), title the case
file's title. Sections carry the LOINC codes the International Patient Summary
(http://hl7.org/fhir/uv/ips/StructureDefinition/Composition-uv-ips) and C-CDA use:

- History of past illness 11348-0: the case file's ``history``.
- Problems 11450-4: the other Conditions (diagnoses, symptoms, findings, complications),
  the tumours (BodyStructure, mcode-tumor) and the AdverseEvents.
- Procedures 47519-4: every Procedure (surgery, transfusions, radiotherapy, not done).
- Medications 10160-0: MedicationRequests, MedicationAdministrations, MedicationStatements.
- Results 30954-2: DiagnosticReports and the Observations no report lists as a result
  (those are reached through their report).
- Plan of care 18776-5: CarePlans.
- Encounters 46240-8 (C-CDA Encounters section): Encounters and their notes.

A section with no entry is left out (cmp-1: a section needs text, entries or
sub-sections; the case file does not say that nothing happened). Each section's text is
generated from its entries (mappings.narrative). Resources no section lists (Specimen,
Device, Substance…) enter the document through the references of those
that do (fhir_service.fhir.document).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B.composition import Composition

from mappings.case.model import Case
from mappings.common import patient_ref
from mappings.context import MappingContext
from mappings.narrative import narrative
from mappings.provenance import SOFTWARE_KEY, last_fact_date

JSON = dict[str, Any]
LOINC = "http://loinc.org"
COMPOSITION_KEY = "case-document"
DOCUMENT_TYPE = {"system": LOINC, "code": "34133-9", "display": "Summary of episode note"}


@dataclass(frozen=True, slots=True)
class Section:
    """One section: its title and its LOINC code."""

    title: str
    code: str
    display: str


HISTORY = Section("History of past illness", "11348-0", "History of Past illness Narrative")
PROBLEMS = Section("Problems", "11450-4", "Problem list - Reported")
PROCEDURES = Section("Procedures", "47519-4", "History of Procedures Document")
MEDICATIONS = Section("Medications", "10160-0", "History of Medication use Narrative")
RESULTS = Section("Results", "30954-2", "Relevant diagnostic tests/laboratory data Narrative")
PLAN_OF_CARE = Section("Plan of care", "18776-5", "Plan of care note")
ENCOUNTERS = Section(
    "Encounters", "46240-8", "History of Hospitalizations+Outpatient visits Narrative"
)
SECTIONS = (HISTORY, PROBLEMS, PROCEDURES, MEDICATIONS, RESULTS, PLAN_OF_CARE, ENCOUNTERS)

_BY_TYPE = {
    "Condition": PROBLEMS,
    "AdverseEvent": PROBLEMS,
    "BodyStructure": PROBLEMS,
    "Procedure": PROCEDURES,
    "MedicationRequest": MEDICATIONS,
    "MedicationAdministration": MEDICATIONS,
    "MedicationStatement": MEDICATIONS,
    "DiagnosticReport": RESULTS,
    "Observation": RESULTS,
    "CarePlan": PLAN_OF_CARE,
    "Encounter": ENCOUNTERS,
}


def _section_of(resource: JSON, history: set[str], reported: set[str]) -> Section | None:
    rid = resource.get("id")
    if rid in history:
        return HISTORY
    rtype = resource.get("resourceType")
    if rtype == "Observation" and rid in reported:
        return None
    if rtype == "DocumentReference":
        return ENCOUNTERS if (resource.get("context") or {}).get("encounter") else None
    return _BY_TYPE.get(str(rtype))


def _report_results(resources: list[JSON]) -> set[str]:
    """Ids of the Observations some DiagnosticReport lists as ``result``."""
    return {
        ref["reference"].removeprefix("urn:uuid:")
        for r in resources
        if r.get("resourceType") == "DiagnosticReport"
        for ref in r.get("result") or []
        if isinstance(ref.get("reference"), str)
    }


def _section(section: Section, members: list[JSON]) -> JSON:
    return {
        "title": section.title,
        "code": {"coding": [{"system": LOINC, "code": section.code, "display": section.display}]},
        "text": narrative(members),
        "entry": [{"reference": f"urn:uuid:{r['id']}"} for r in members],
    }


def map_composition(case: Case, ctx: MappingContext, resources: list[JSON]) -> Composition:
    """The Composition whose sections list ``resources`` (the case's mapped resources)."""
    history = {ctx.resource_id("Condition", h.key) for h in case.history}
    reported = _report_results(resources)
    members: dict[Section, list[JSON]] = {s: [] for s in SECTIONS}
    for resource in resources:
        section = _section_of(resource, history, reported)
        if section is not None:
            members[section].append(resource)
    recorded = last_fact_date(case, ctx.anchor_date)
    return Composition.model_validate(
        {
            "resourceType": "Composition",
            "id": ctx.resource_id("Composition", COMPOSITION_KEY),
            "identifier": ctx.identifier("Composition", COMPOSITION_KEY),
            "status": "final",
            "type": {"coding": [DOCUMENT_TYPE]},
            "subject": patient_ref(case, ctx),
            "date": f"{recorded.isoformat()}T00:00:00Z",
            "author": [ctx.reference("Device", SOFTWARE_KEY)],
            "title": case.case.title,
            "section": [_section(s, members[s]) for s in SECTIONS if members[s]],
        }
    )
