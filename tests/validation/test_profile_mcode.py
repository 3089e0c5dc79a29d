"""check_profile against mCODE 4.0.0 profiles, with hand-written resources.

Expected issues follow the profiles' published rules: mcode-cancer-disease-status
requires status, subject and code = LOINC 97509-4, value[x] is a CodeableConcept;
mcode-radiotherapy-modality-and-technique requires its modality sub-extension.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from fhir_service.errors import Issue
from fhir_service.fhir.package_cache import Definitions
from fhir_service.validation.profile import check_profile, definitions_from_cache

MCODE = "http://hl7.org/fhir/us/mcode/StructureDefinition/"
DISEASE_STATUS = MCODE + "mcode-cancer-disease-status"
COURSE_SUMMARY = MCODE + "mcode-radiotherapy-course-summary"
PRIMARY_CANCER = MCODE + "mcode-primary-cancer-condition"
SCT = "http://snomed.info/sct"

STATUS_OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "ivc-disease-status",
    "status": "final",
    "category": [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "laboratory",
                }
            ]
        }
    ],
    "code": {"coding": [{"system": "http://loinc.org", "code": "97509-4"}]},
    "subject": {"reference": "Patient/ivc-patient"},
    "effectiveDateTime": "2022-03-01",
    "valueCodeableConcept": {"coding": [{"system": SCT, "code": "359746009"}]},
}

COURSE: dict[str, Any] = {
    "resourceType": "Procedure",
    "status": "completed",
    "extension": [
        {
            "url": MCODE + "mcode-radiotherapy-modality-and-technique",
            "extension": [
                {
                    "url": MCODE + "mcode-radiotherapy-modality",
                    "valueCodeableConcept": {"coding": [{"system": SCT, "code": "45643008"}]},
                }
            ],
        }
    ],
    "code": {"coding": [{"system": SCT, "code": "1217123003"}]},
    "subject": {"reference": "Patient/ivc-patient"},
}


@pytest.fixture(scope="module")
def defs(package_root: Path) -> Definitions:
    return definitions_from_cache(package_root)


def errors(issues: list[Issue]) -> list[tuple[str, list[str]]]:
    return [(i.diagnostics, i.expression) for i in issues if i.severity in ("error", "fatal")]


def test_minimal_disease_status_passes(defs: Definitions) -> None:
    assert errors(check_profile(STATUS_OBSERVATION, DISEASE_STATUS, defs)) == []


def test_missing_subject_is_reported_at_the_parent(defs: Definitions) -> None:
    resource = copy.deepcopy(STATUS_OBSERVATION)
    del resource["subject"]
    [(text, where)] = errors(check_profile(resource, DISEASE_STATUS, defs))
    assert where == ["Observation"]
    assert text.startswith("Observation.subject: minimum required = 1, but only found 0")


def test_wrong_loinc_code_breaks_the_pattern(defs: Definitions) -> None:
    resource = copy.deepcopy(STATUS_OBSERVATION)
    resource["code"]["coding"][0]["code"] = "97508-6"
    [issue] = [i for i in check_profile(resource, DISEASE_STATUS, defs) if i.severity == "error"]
    assert issue.expression == ["Observation.code"]
    assert issue.code == "value"
    assert "97509-4" in issue.diagnostics


def test_extra_coding_keeps_the_pattern(defs: Definitions) -> None:
    resource = copy.deepcopy(STATUS_OBSERVATION)
    resource["code"]["coding"].insert(0, {"system": "http://example.org/local", "code": "status"})
    assert errors(check_profile(resource, DISEASE_STATUS, defs)) == []


def test_value_of_a_type_not_allowed(defs: Definitions) -> None:
    resource = copy.deepcopy(STATUS_OBSERVATION)
    del resource["valueCodeableConcept"]
    resource["valueString"] = "stable"
    [(text, where)] = errors(check_profile(resource, DISEASE_STATUS, defs))
    assert where == ["Observation.valueString"]
    assert "String is not allowed" in text


def test_status_outside_required_value_set(defs: Definitions) -> None:
    resource = copy.deepcopy(STATUS_OBSERVATION)
    resource["status"] = "done"
    issues = [i for i in check_profile(resource, DISEASE_STATUS, defs) if i.severity == "error"]
    assert [(i.code, i.expression) for i in issues] == [("code-invalid", ["Observation.status"])]


def test_too_many_values(defs: Definitions) -> None:
    resource = copy.deepcopy(STATUS_OBSERVATION)
    resource["code"] = [resource["code"], resource["code"]]
    found = errors(check_profile(resource, DISEASE_STATUS, defs))
    assert any(
        w == ["Observation"] and t.startswith("Observation.code: max allowed = 1") for t, w in found
    )


def test_course_summary_with_modality_passes(defs: Definitions) -> None:
    assert errors(check_profile(COURSE, COURSE_SUMMARY, defs)) == []


def test_dropping_the_required_modality_extension(defs: Definitions) -> None:
    resource = copy.deepcopy(COURSE)
    resource["extension"][0]["extension"] = [
        {
            "url": MCODE + "mcode-radiotherapy-technique",
            "valueCodeableConcept": {"coding": [{"system": SCT, "code": "1156530009"}]},
        }
    ]
    [(text, where)] = errors(check_profile(resource, COURSE_SUMMARY, defs))
    assert where == ["Procedure.extension[0]"]
    assert text.startswith("Extension.extension:modality: minimum required = 1, but only found 0")


def test_modality_code_outside_its_value_set(defs: Definitions) -> None:
    resource = copy.deepcopy(COURSE)
    resource["extension"][0]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] = (
        "97509-4"
    )
    [(text, where)] = errors(check_profile(resource, COURSE_SUMMARY, defs))
    assert where == ["Procedure.extension[0].extension[0].valueCodeableConcept"]
    assert "mcode-radiotherapy-modality-vs" in text


def test_missing_procedure_status_and_wrong_code(defs: Definitions) -> None:
    resource = copy.deepcopy(COURSE)
    del resource["status"]
    resource["code"]["coding"][0]["code"] = "108290001"
    found = errors(check_profile(resource, COURSE_SUMMARY, defs))
    assert sorted(w[0] for _, w in found) == ["Procedure", "Procedure.code"]


def _primary_cancer(extension: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "extension": [extension],
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                        "code": "problem-list-item",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": SCT, "code": "443250005"}]},
        "subject": {"reference": "Patient/ivc-patient"},
    }


def test_histology_extension_with_a_wrong_value_type(defs: Definitions) -> None:
    url = MCODE + "mcode-histology-morphology-behavior"
    resource = _primary_cancer({"url": url, "valueString": "leiomyosarcoma"})
    found = errors(check_profile(resource, PRIMARY_CANCER, defs))
    assert ("Extension.value[x]: minimum required = 1", ["Condition.extension[0]"]) in [
        (t.split(" but")[0].rstrip(","), w) for t, w in found
    ]
    assert any(w == ["Condition.extension[0].valueString"] for _, w in found)


def test_what_cannot_be_checked_is_reported(defs: Definitions) -> None:
    url = MCODE + "mcode-histology-morphology-behavior"
    value = {"coding": [{"system": SCT, "code": "51549004"}]}
    resource = _primary_cancer({"url": url, "valueCodeableConcept": value})
    issues = check_profile(resource, PRIMARY_CANCER, defs)
    assert errors(issues) == []
    # US Core is not installed: its category slice cannot be told apart, and that is said.
    unchecked = [i for i in issues if i.severity == "warning" and i.code == "not-supported"]
    assert any(
        i.diagnostics.startswith("Condition.category:us-core: minimum 1 could not be checked")
        for i in unchecked
    )


def test_unknown_profile_is_an_error(defs: Definitions) -> None:
    [issue] = check_profile(STATUS_OBSERVATION, MCODE + "mcode-no-such-profile", defs)
    assert (issue.severity, issue.code, issue.expression) == ("error", "not-found", ["Observation"])
    assert "not available" in issue.diagnostics


def test_profile_for_another_resource_type(defs: Definitions) -> None:
    [issue] = check_profile(STATUS_OBSERVATION, COURSE_SUMMARY, defs)
    assert issue.severity == "error"
    assert "is for Procedure, not Observation" in issue.diagnostics
