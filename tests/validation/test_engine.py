"""The validation engine on small resources whose verdict the R4 specification settles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fhir_service.errors import Issue
from fhir_service.fhir.package_cache import Definitions, load_definitions
from fhir_service.validation.engine import has_errors, validate_json_text, validate_resource
from fhir_service.validation.options import Options


@pytest.fixture(scope="module")
def defs(package_root: Path) -> Definitions:
    return load_definitions(package_root)


def errors(issues: list[Issue]) -> list[tuple[str, str]]:
    return [
        (i.expression[0] if i.expression else "", i.diagnostics)
        for i in issues
        if i.severity in ("error", "fatal")
    ]


def check(resource: dict[str, Any], defs: Definitions, **options: Any) -> list[tuple[str, str]]:
    return errors(validate_resource(resource, definitions=defs, options=Options(**options)))


def test_valid_patient_has_no_issue(defs: Definitions) -> None:
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "name": [{"family": "Chalmers", "given": ["Peter", "James"]}],
        "gender": "male",
        "birthDate": "1974-12-25",
        "deceasedBoolean": False,
    }
    assert validate_resource(patient, definitions=defs) == []


def test_unknown_element_is_reported_at_its_parent(defs: Definitions) -> None:
    found = check({"resourceType": "Patient", "name": [{"family": "X", "nick": "Y"}]}, defs)
    assert found == [("Patient.name[0]", "Unrecognized property 'nick'")]


def test_missing_required_element_and_max_cardinality(defs: Definitions) -> None:
    # Observation.status and Observation.code are 1..1 (R4 observation.html).
    found = check({"resourceType": "Observation", "status": "final"}, defs)
    assert [where for where, _ in found] == ["Observation"]
    assert found[0][1].startswith("Observation.code: minimum required = 1, but only found 0")


def test_array_rules(defs: Definitions) -> None:
    found = check({"resourceType": "Patient", "gender": ["male"], "name": {"family": "X"}}, defs)
    assert {where for where, _ in found} == {"Patient.gender", "Patient.name"}
    empty = check({"resourceType": "Patient", "name": []}, defs)
    assert empty == [
        (
            "Patient.name",
            "Array cannot be empty - the property should not be present if it has no values",
        )
    ]


@pytest.mark.parametrize(
    ("element", "value"),
    [
        ("birthDate", "1974-13-01"),
        ("birthDate", 1974),
        ("active", "true"),
        ("id", "bad_id"),
        ("multipleBirthInteger", 1.5),
    ],
)
def test_primitive_formats(defs: Definitions, element: str, value: Any) -> None:
    found = check({"resourceType": "Patient", element: value}, defs)
    assert [where for where, _ in found] == [
        "Patient.multipleBirth.ofType(integer)"
        if element.startswith("multiple")
        else f"Patient.{element}"
    ]


def test_date_time_with_time_needs_a_zone(defs: Definitions) -> None:
    found = check(
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"text": "x"},
            "effectiveDateTime": "2020-01-01T10:00:00",
        },
        defs,
    )
    assert found == [
        ("Observation.effective.ofType(dateTime)", "If a date has a time, it must have a timezone")
    ]


def test_required_binding_on_code_and_codeable_concept(defs: Definitions) -> None:
    found = check({"resourceType": "Patient", "gender": "mail"}, defs)
    assert [where for where, _ in found] == ["Patient.gender"]
    # AllergyIntolerance.clinicalStatus is bound (required) to allergyintolerance-clinical.
    allergy = {
        "resourceType": "AllergyIntolerance",
        "patient": {"reference": "Patient/1"},
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                    "code": "gone",
                }
            ]
        },
    }
    # "gone" is outside the binding. Its code system is HL7 terminology, whose copy in the
    # R4 core package is not current: the code itself is not judged against it.
    assert [where for where, _ in check(allergy, defs)] == ["AllergyIntolerance.clinicalStatus"]


def test_invariant_failure_is_reported_at_its_element(defs: Definitions) -> None:
    # per-1: a Period's start SHALL be before its end.
    encounter = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "period": {"start": "2020-02-01", "end": "2020-01-01"},
    }
    found = check(encounter, defs)
    assert found == [
        (
            "Encounter.period",
            "Constraint failed: per-1: 'If present, start SHALL have a lower value than end'",
        )
    ]
    assert check(encounter, defs, invariants=False) == []


def test_fhirpath_invariant_without_native_form(defs: Definitions) -> None:
    # org-1: an Organization SHALL at least have a name or an identifier.
    assert check({"resourceType": "Organization", "active": True}, defs) == [
        (
            "Organization",
            "Constraint failed: org-1: 'The organization SHALL at least have a name or an "
            "identifier, and possibly more than one'",
        )
    ]
    assert check({"resourceType": "Organization", "name": "Acme"}, defs) == []


def test_local_reference_must_resolve_to_contained(defs: Definitions) -> None:
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": "#nobody"},
    }
    found = check(obs, defs)
    assert {where for where, _ in found} == {"Observation.subject"}
    assert any("ref-1" in text for _, text in found)


def test_unreferenced_contained_resource(defs: Definitions) -> None:
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "contained": [{"resourceType": "Patient", "id": "p"}],
    }
    assert [where for where, _ in check(obs, defs)] == ["Observation.contained[0]"]
    obs["subject"] = {"reference": "#p"}
    assert check(obs, defs) == []


def test_reference_target_type(defs: Definitions) -> None:
    # Observation.subject may point at Patient, Group, Device or Location, not Medication.
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": "Medication/1"},
    }
    [(where, text)] = check(obs, defs)
    assert where == "Observation.subject"
    assert "is not a valid Target" in text


def bundle(*entries: dict[str, Any], kind: str = "collection") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def test_bundle_full_urls(defs: Definitions) -> None:
    patient = {"resourceType": "Patient", "id": "a"}
    found = check(bundle({"fullUrl": "Patient/a", "resource": patient}), defs)
    assert found == [("Bundle.entry[0]", "The fullUrl must be an absolute URL (not 'Patient/a')")]
    same = {"fullUrl": "http://x.org/fhir/Patient/a", "resource": patient}
    found = check(bundle(same, same), defs)
    assert [text.split(":")[1].strip() for _, text in found] == ["bdl-7"]


def test_urn_references_in_a_transaction_must_resolve(defs: Definitions) -> None:
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "subject": {"reference": "urn:uuid:00000000-0000-0000-0000-000000000001"},
    }
    entry = {
        "fullUrl": "urn:uuid:00000000-0000-0000-0000-000000000002",
        "resource": obs,
        "request": {"method": "POST", "url": "Observation"},
    }
    found = check(bundle(entry, kind="transaction"), defs)
    assert [where for where, _ in found] == ["Bundle.entry[0].resource/*Observation/null*/.subject"]
    patient = {
        "fullUrl": "urn:uuid:00000000-0000-0000-0000-000000000001",
        "resource": {"resourceType": "Patient"},
        "request": {"method": "POST", "url": "Patient"},
    }
    assert check(bundle(entry, patient, kind="transaction"), defs) == []


def test_extension_unknown_and_out_of_context(defs: Definitions) -> None:
    unknown = {
        "resourceType": "Patient",
        "extension": [{"url": "http://acme.org/x", "valueString": "y"}],
    }
    assert [where for where, _ in check(unknown, defs)] == ["Patient.extension[0]"]
    # patient-birthPlace is defined for Patient, not Observation.
    ext = {
        "url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
        "valueAddress": {"city": "Paris"},
    }
    assert check({"resourceType": "Patient", "extension": [ext]}, defs) == []
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "extension": [ext],
    }
    assert [where for where, _ in check(obs, defs)] == ["Observation"]


def test_json_syntax_issues_carry_lines(defs: Definitions) -> None:
    text = '{\n  "resourceType": "Patient",\n  "active": true,\n  "active": false\n}'
    issues = validate_json_text(text, definitions=defs)
    [issue] = [i for i in issues if i.severity == "error"]
    assert "duplicate" in issue.diagnostics
    comments = '{\n  // note\n  "resourceType": "Patient"\n}'
    assert has_errors(validate_json_text(comments, definitions=defs))
    assert not has_errors(
        validate_json_text(comments, definitions=defs, options=Options(allow_comments=True))
    )


def test_structure_issue_line_and_column(defs: Definitions) -> None:
    text = json.dumps({"resourceType": "Patient", "gender": "mail"}, indent=2)
    [issue] = validate_json_text(text, definitions=defs)
    assert (issue.line, issue.column) == (3, 13)


def test_meta_profile_not_installed_is_a_warning_and_explicit_one_an_error(
    defs: Definitions,
) -> None:
    patient = {
        "resourceType": "Patient",
        "meta": {"profile": ["http://acme.org/StructureDefinition/p"]},
    }
    issues = validate_resource(patient, definitions=defs)
    assert [(i.severity, i.expression) for i in issues] == [
        ("warning", ["Patient.meta.profile[0]"])
    ]
    issues = validate_resource(
        {"resourceType": "Patient"},
        definitions=defs,
        profiles=["http://acme.org/StructureDefinition/p"],
    )
    assert [(i.severity, i.expression) for i in issues] == [("error", ["Patient"])]


def test_mcode_profile_is_checked(defs: Definitions) -> None:
    # mCODE CancerPatient (on US Core Patient) requires identifier, name and gender (1..*),
    # which the core Patient leaves optional.
    url = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-cancer-patient"
    assert validate_resource({"resourceType": "Patient"}, definitions=defs) == []
    patient = {"resourceType": "Patient", "meta": {"profile": [url]}}
    found = check(patient, defs)
    assert {text.split(":")[0] for _, text in found} == {
        "Patient.identifier",
        "Patient.name",
        "Patient.gender",
    }
    assert all(where == "Patient" and url in text for where, text in found)


def test_official_mcode_examples_have_no_error(defs: Definitions, package_root: Path) -> None:
    folder = package_root / "hl7.fhir.us.mcode#4.0.0" / "package" / "example"
    paths = sorted(folder.glob("*.json"))
    assert len(paths) > 100
    rejected = {
        path.name: errors(validate_resource(json.loads(path.read_text()), definitions=defs))
        for path in paths
    }
    assert {name: found for name, found in rejected.items() if found} == {}


def test_extension_of_a_missing_dependency_is_a_warning(defs: Definitions) -> None:
    # mCODE depends on US Core, which is not installed: its extensions cannot be checked.
    url = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex"
    patient = {"resourceType": "Patient", "extension": [{"url": url, "valueCode": "F"}]}
    [issue] = validate_resource(patient, definitions=defs)
    assert (issue.severity, issue.expression) == ("warning", ["Patient.extension[0]"])
    assert "hl7.fhir.us.core#" in issue.diagnostics


@pytest.mark.parametrize(
    "text", ["", "[]", "null", "{}", '{"resourceType": "Nope"}', "[" * 5000 + "]" * 5000]
)
def test_unusable_documents_are_errors_not_crashes(defs: Definitions, text: str) -> None:
    assert has_errors(validate_json_text(text, definitions=defs))


def test_extension_value_type_follows_its_definition(defs: Definitions) -> None:
    # patient-birthPlace has value[x] of type Address only.
    url = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
    patient = {"resourceType": "Patient", "extension": [{"url": url, "valueString": "Paris"}]}
    [(where, text)] = check(patient, defs)
    assert where == "Patient.extension[0].value.ofType(string)"
    assert "allowed: Address" in text
