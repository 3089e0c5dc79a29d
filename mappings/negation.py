"""Statements that something did not happen, with R4's standard elements.

- A procedure not done is a Procedure with status ``not-done`` and ``statusReason``
  (mappings/procedure.py; https://hl7.org/fhir/R4/procedure-definitions.html#Procedure.status).
- "No complication" after a procedure (the case file's ``no_complications``, with the
  report's own words) is a List of the procedure's complications that is empty, with
  ``emptyReason`` ``nilknown``: "clinical judgment that there are no known items for this
  list after reasonable investigation ... a positive statement by a clinical user"
  (https://hl7.org/fhir/R4/codesystem-list-empty-reason.html,
  https://hl7.org/fhir/R4/list.html#emptyReason). It is not an AdverseEvent with
  ``actuality`` ``potential``: that means an event that could have happened (a near
  miss), not the absence of one. R4 List has no element pointing at the procedure; the
  List's ``title`` names it, its ``encounter`` is the procedure's stay, and its
  ``date`` the procedure's date.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.list import List as FhirList
from fhir.resources.R4B.resource import Resource

from mappings.case.model import Case, Procedure
from mappings.common import note, patient_ref, put_date
from mappings.context import MappingContext
from mappings.procedure import inpatient_stay

LIST_EMPTY_REASON = "http://terminology.hl7.org/CodeSystem/list-empty-reason"
"""https://hl7.org/fhir/R4/codesystem-list-empty-reason.html"""


def complications_key(procedure_key: str) -> str:
    """The fact key of the (empty) List of a procedure's complications."""
    return f"{procedure_key}-complications"


def map_negations(case: Case, ctx: MappingContext) -> list[Resource]:
    """One empty complications List per procedure with ``no_complications``."""
    return [
        FhirList.model_validate(_no_complications(case, ctx, p))
        for p in case.procedures
        if p.no_complications
    ]


def _no_complications(case: Case, ctx: MappingContext, proc: Procedure) -> dict[str, Any]:
    key = complications_key(proc.key)
    res: dict[str, Any] = {
        "resourceType": "List",
        "id": ctx.resource_id("List", key),
        "identifier": [ctx.identifier("List", key)],
        "status": "current",
        "mode": "snapshot",
        "title": f"Complications of: {proc.text.strip()}",
        "code": {"text": "Complications of the procedure"},
        "subject": patient_ref(case, ctx),
        "emptyReason": {
            "coding": [{"system": LIST_EMPTY_REASON, "code": "nilknown", "display": "Nil Known"}],
            "text": proc.no_complications,
        },
        "note": [note(f"As reported: {proc.no_complications}")],
    }
    if stay := inpatient_stay(case, proc.when, ctx):
        res["encounter"] = ctx.reference("Encounter", stay)
    put_date(res, "date", proc.when, ctx)
    return res
