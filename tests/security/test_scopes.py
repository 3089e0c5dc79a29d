"""SMART scope syntax, v1 and v2, and what each grants
(https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html)."""

from __future__ import annotations

import pytest

from fhir_service.fhir.smart_scopes import ScopeSet, parse_scope
from fhir_service.search.compartment import compartment_paths, element_paths
from fhir_service.search.registry import get_registry
from fhir_service.storage.access import access_scope


@pytest.mark.parametrize(
    ("text", "context", "rtype", "actions"),
    [
        ("system/*.read", "system", "*", "rs"),
        ("patient/Observation.write", "patient", "Observation", "cud"),
        ("user/Patient.*", "user", "Patient", "cruds"),
        ("system/Observation.rs", "system", "Observation", "rs"),
        ("patient/*.cruds", "patient", "*", "cruds"),
        ("patient/Condition.c", "patient", "Condition", "c"),
        ("system/*.ds", "system", "*", "ds"),
    ],
)
def test_parse(text: str, context: str, rtype: str, actions: str) -> None:
    scope = parse_scope(text)
    assert scope is not None
    assert (scope.context, scope.resource_type, scope.actions) == (context, rtype, set(actions))


@pytest.mark.parametrize(
    "text",
    [
        "openid",
        "launch/patient",
        "system/*.sr",
        "system/*.crudsx",
        "system/*.",
        "patient/obs.read",
        "system/Observation.rs?category=laboratory",
        "fhirUser",
        "system/*.readwrite",
    ],
)
def test_not_clinical_scopes(text: str) -> None:
    assert parse_scope(text) is None


def test_reach() -> None:
    """system/ scopes reach every resource of their types, patient/ scopes the token
    patient's compartment (none without a patient), user/ scopes nothing."""
    scopes = ScopeSet.parse("patient/*.rs system/Patient.r user/*.cruds openid")
    with_patient = access_scope(scopes, "p1")
    assert with_patient.reach("Patient", "r") == "all"
    assert with_patient.reach("Observation", "s") == "compartment"
    assert access_scope(scopes, None).reach("Observation", "s") is None
    assert with_patient.reach("Observation", "c") is None
    assert with_patient.reach("Patient", "d") is None


def test_within() -> None:
    allowed = ScopeSet.parse("system/*.rs patient/Observation.cruds")
    asked = ScopeSet.parse("system/Patient.r system/*.cruds patient/Observation.rs patient/*.rs")
    assert asked.within(allowed).texts() == ["system/Patient.r", "patient/Observation.rs"]


def test_element_paths() -> None:
    expression = "AllergyIntolerance.patient | CarePlan.subject.where(resolve() is Patient)"
    assert element_paths(expression, "CarePlan") == [("subject",)]
    assert element_paths("(Observation.subject as Reference)", "Observation") == [("subject",)]


def test_core_patient_compartment() -> None:
    compartment = compartment_paths(get_registry())
    observation = {
        "resourceType": "Observation",
        "subject": {"reference": "Patient/a"},
        "performer": [{"reference": "http://other.example/fhir/Patient/c/_history/2"}],
    }
    assert compartment.patients(observation) == {"a", "c"}
    care_plan = {
        "resourceType": "CarePlan",
        "activity": [{"detail": {"performer": [{"reference": "Patient/d"}]}}],
    }
    assert compartment.contains(care_plan, "d")
    assert compartment.patients({"resourceType": "Patient", "id": "p"}) == {"p"}
    assert not compartment.covers("Practitioner")
    assert compartment.patients({"resourceType": "Practitioner", "id": "x"}) == set()
