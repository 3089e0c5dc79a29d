"""The case's patient as an mCODE CancerPatient (US Core Patient).

https://hl7.org/fhir/us/mcode/STU4/StructureDefinition-mcode-cancer-patient.html requires
identifier, name and gender. Case reports give no name: the one HumanName carries only the
data-absent-reason extension (https://hl7.org/fhir/R4/extension-data-absent-reason.html,
``masked``: withheld for privacy). No birth date is given, so birthDate is left out; the
age at presentation is an Observation (mappings/observation.py).
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.resource import Resource

from mappings.case.model import Case
from mappings.common import DATA_ABSENT_REASON, profile
from mappings.context import MappingContext

CANCER_PATIENT = "mcode-cancer-patient"
NAME_ABSENT_REASON = "masked"
"""https://terminology.hl7.org/CodeSystem-data-absent-reason.html#data-absent-reason-masked"""


def map_patient(case: Case, ctx: MappingContext) -> list[Resource]:
    """One Patient: identifier, a name that is absent on purpose, administrative gender."""
    p = case.patient
    data: dict[str, Any] = {
        "resourceType": "Patient",
        "id": ctx.resource_id("Patient", p.key),
        "meta": profile(CANCER_PATIENT),
        "identifier": [ctx.identifier("Patient", p.key)],
        "name": [{"extension": [{"url": DATA_ABSENT_REASON, "valueCode": NAME_ABSENT_REASON}]}],
        "gender": p.sex,
    }
    return [Patient.model_validate(data)]
