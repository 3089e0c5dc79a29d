"""Observations of the IVC case: labs, operative measurements, tumour size, disease status."""

from __future__ import annotations

from typing import Any

import pytest

from mappings.observation import map_observations

from .mapped import DAR, LOINC, MCODE, SCT, UCUM, by_key, codes_of, note_text, run, url


@pytest.fixture(scope="module")
def observations(ivc_case: Any) -> list[dict[str, Any]]:
    return run(ivc_case, map_observations)


@pytest.mark.parametrize(
    ("key", "loinc", "value", "unit"),
    [("ast", "1920-8", 180, "U/L"), ("alt", "1742-6", 80, "U/L")],
)
def test_raised_liver_enzymes(
    ivc_case: Any, observations: list[dict[str, Any]], key: str, loinc: str, value: int, unit: str
) -> None:
    o = by_key(ivc_case, observations, "Observation", key)
    assert (LOINC, loinc) in codes_of(o["code"])
    assert o["valueQuantity"] == {"value": value, "unit": unit, "system": UCUM, "code": unit}
    assert o["interpretation"][0]["coding"][0]["code"] == "H"
    assert o["_effectiveDateTime"]["extension"][0]["url"] == DAR  # before surgery, undated


def test_bilirubin_kept_as_printed_with_the_correction_noted(
    ivc_case: Any, observations: list[dict[str, Any]]
) -> None:
    o = by_key(ivc_case, observations, "Observation", "total-bilirubin")
    assert (LOINC, "14631-6") in codes_of(o["code"])
    assert o["valueQuantity"]["value"] == 14.8
    assert o["valueQuantity"]["code"] == "mmol/L"  # as printed in the report
    assert o["interpretation"][0]["coding"][0]["code"] == "H"
    assert "14.8 umol/L" in note_text(o)


def test_blood_loss_about_5000_ml(ivc_case: Any, observations: list[dict[str, Any]]) -> None:
    o = by_key(ivc_case, observations, "Observation", "blood-loss")
    assert (LOINC, "81661-1") in codes_of(o["code"])
    assert o["valueQuantity"]["value"] == 5000
    assert o["valueQuantity"]["code"] == "mL"
    assert "Approximate" in note_text(o)
    assert o["partOf"] == [{"reference": url(ivc_case, "Procedure", "elra-operation")}]
    assert o["effectiveDateTime"] == "2022-03-01"  # day of surgery


def test_ischaemic_time_100_min(ivc_case: Any, observations: list[dict[str, Any]]) -> None:
    o = by_key(ivc_case, observations, "Observation", "ischemic-time")
    assert o["valueQuantity"] == {"value": 100, "unit": "minute", "system": UCUM, "code": "min"}
    assert o["code"]["text"] == "Ischaemic time"


def test_clavien_dindo_grade_ii_of_the_fever(
    ivc_case: Any, observations: list[dict[str, Any]]
) -> None:
    o = by_key(ivc_case, observations, "Observation", "postoperative-fever-grade")
    assert o["valueCodeableConcept"]["text"] == "Grade II"
    assert "Clavien-Dindo" in o["code"]["text"]
    assert o["focus"] == [{"reference": url(ivc_case, "Condition", "postoperative-fever")}]
    assert o["partOf"] == [{"reference": url(ivc_case, "Procedure", "elra-operation")}]


def test_tumour_size_8_by_6_by_5_cm_on_the_specimen(
    ivc_case: Any, observations: list[dict[str, Any]]
) -> None:
    o = by_key(ivc_case, observations, "Observation", "tumour-size")
    assert o["meta"]["profile"] == [MCODE + "mcode-tumor-size"]
    assert (LOINC, "21889-1") in codes_of(o["code"])
    dims = [(c["code"]["coding"][0]["code"], c["valueQuantity"]["value"]) for c in o["component"]]
    assert dims == [("33728-7", 8), ("33729-5", 6), ("33729-5", 5)]
    assert {c["valueQuantity"]["code"] for c in o["component"]} == {"cm"}
    assert (SCT, "787377000") in codes_of(o["method"])
    assert o["specimen"] == {"reference": url(ivc_case, "Specimen", "resected-specimen")}
    assert "focus" not in o  # exactly one of focus or specimen


@pytest.mark.parametrize(
    ("key", "code", "date"),
    [
        ("status-month-12", "271299001", "2023-03-01"),  # recurrence, liver metastases
        ("status-month-17", "271299001", "2023-08-01"),  # lung metastases, progression
        ("status-two-years", "359746009", "2023-12-01"),  # no significant progression
    ],
)
def test_disease_status_over_time(
    ivc_case: Any, observations: list[dict[str, Any]], key: str, code: str, date: str
) -> None:
    o = by_key(ivc_case, observations, "Observation", key)
    assert o["meta"]["profile"] == [MCODE + "mcode-cancer-disease-status"]
    assert (LOINC, "97509-4") in codes_of(o["code"])
    assert codes_of(o["valueCodeableConcept"]) == {(SCT, code)}
    assert o["effectiveDateTime"] == date
    assert o["focus"] == [{"reference": url(ivc_case, "Condition", "ivc-leiomyosarcoma")}]


def test_two_year_mark_is_marked_approximate(
    ivc_case: Any, observations: list[dict[str, Any]]
) -> None:
    o = by_key(ivc_case, observations, "Observation", "status-two-years")
    assert "approximate" in note_text(o)


def test_imaging_and_pathology_findings(ivc_case: Any, observations: list[dict[str, Any]]) -> None:
    ovarian = by_key(ivc_case, observations, "Observation", "cta-ovarian-vein-thrombosis")
    assert ovarian["valueCodeableConcept"]["text"] == "Possible right ovarian vein thrombosis"
    assert (SCT, "976004") in codes_of(ovarian["bodySite"])
    spindle = by_key(ivc_case, observations, "Observation", "path-spindle-cells")
    assert "spindle" in spindle["valueCodeableConcept"]["text"]
    assert spindle["specimen"] == {"reference": url(ivc_case, "Specimen", "resected-specimen")}
    assert "Figure 3B" in note_text(spindle)
