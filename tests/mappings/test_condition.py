"""Conditions of the IVC case, checked against the case report's statements."""

from __future__ import annotations

from typing import Any

import pytest

from mappings.condition import map_conditions

from .mapped import ICD10CM, ICDO3, MCODE, SCT, by_key, codes_of, note_text, run, url


@pytest.fixture(scope="module")
def conditions(ivc_case: Any) -> list[dict[str, Any]]:
    return run(ivc_case, map_conditions)


def test_primary_ivc_leiomyosarcoma(ivc_case: Any, conditions: list[dict[str, Any]]) -> None:
    c = by_key(ivc_case, conditions, "Condition", "ivc-leiomyosarcoma")
    assert c["meta"]["profile"] == [MCODE + "mcode-primary-cancer-condition"]
    assert {(ICD10CM, "C49.4"), (SCT, "363346000")} <= codes_of(c["code"])
    [histology] = [e for e in c["extension"] if e["url"].endswith("histology-morphology-behavior")]
    assert (ICDO3, "8890/3") in codes_of(histology["valueCodeableConcept"])
    assert (SCT, "64131007") in codes_of(c["bodySite"][0])  # inferior vena cava
    assert c["verificationStatus"]["coding"][0]["code"] == "confirmed"
    assert c["clinicalStatus"]["coding"][0]["code"] == "recurrence"
    assert c["category"][0]["coding"][0]["code"] == "problem-list-item"
    evidence = {d["reference"] for e in c["evidence"] for d in e["detail"]}
    assert url(ivc_case, "DiagnosticReport", "pathology-report") in evidence
    assert url(ivc_case, "DiagnosticReport", "mri-abdomen") in evidence
    assert "segments II and III" in note_text(c)


@pytest.mark.parametrize(
    ("key", "icd10", "snomed", "onset"),
    [
        ("liver-metastases", "C78.7", "94381002", "2023-03-01"),  # 12 months after surgery
        ("lung-metastases", "C78.00", "94391008", "2023-08-01"),  # 17 months after surgery
    ],
)
def test_metastases_are_secondary_cancers_of_the_primary(
    ivc_case: Any,
    conditions: list[dict[str, Any]],
    key: str,
    icd10: str,
    snomed: str,
    onset: str,
) -> None:
    c = by_key(ivc_case, conditions, "Condition", key)
    assert c["meta"]["profile"] == [MCODE + "mcode-secondary-cancer-condition"]
    assert {(ICD10CM, icd10), (SCT, snomed)} <= codes_of(c["code"])
    assert c["onsetDateTime"] == onset
    ext = {e["url"]: e for e in c["extension"]}
    related = ext["http://hl7.org/fhir/StructureDefinition/condition-related"]
    assert related["valueReference"]["reference"] == url(
        ivc_case, "Condition", "ivc-leiomyosarcoma"
    )
    histology = ext[MCODE + "mcode-histology-morphology-behavior"]
    assert (ICDO3, "8890/6") in codes_of(histology["valueCodeableConcept"])


def test_twenty_year_hepatitis_b(ivc_case: Any, conditions: list[dict[str, Any]]) -> None:
    c = by_key(ivc_case, conditions, "Condition", "hepatitis-b")
    assert {(SCT, "61977001"), (ICD10CM, "B18.1")} <= codes_of(c["code"])
    assert "20 a" in c["onsetString"]
    assert "onsetDateTime" not in c  # the report dates nothing


def test_presenting_symptoms_for_two_weeks(ivc_case: Any, conditions: list[dict[str, Any]]) -> None:
    swelling = by_key(ivc_case, conditions, "Condition", "lower-limb-swelling")
    assert {(SCT, "102572006"), (ICD10CM, "R60.0")} <= codes_of(swelling["code"])
    assert "2 wk" in swelling["onsetString"]
    fatigue = by_key(ivc_case, conditions, "Condition", "fatigue")
    assert (SCT, "84229001") in codes_of(fatigue["code"])
    assert fatigue["severity"]["text"] == "mild"
    edema = by_key(ivc_case, conditions, "Condition", "lower-extremity-edema")
    assert "physical examination" in note_text(edema)


def test_possible_ovarian_vein_thrombosis_is_provisional(
    ivc_case: Any, conditions: list[dict[str, Any]]
) -> None:
    c = by_key(ivc_case, conditions, "Condition", "ovarian-vein-thrombosis")
    assert (ICD10CM, "I82.890") in codes_of(c["code"])
    assert c["verificationStatus"]["coding"][0]["code"] == "provisional"
    site = c["bodySite"][0]
    assert (SCT, "976004") in codes_of(site)
    assert (SCT, "24028007") in codes_of(site["extension"][0]["valueCodeableConcept"])  # right


def test_postoperative_fever_complication(ivc_case: Any, conditions: list[dict[str, Any]]) -> None:
    c = by_key(ivc_case, conditions, "Condition", "postoperative-fever")
    assert (SCT, "386661006") in codes_of(c["code"])
    assert "onsetDateTime" not in c  # "after surgery", no date
    assert "after day 0" in note_text(c)


def test_no_condition_is_invented(conditions: list[dict[str, Any]]) -> None:
    # 1 history + 2 symptoms + 1 exam finding + 4 diagnoses + 1 complication
    assert len(conditions) == 9
