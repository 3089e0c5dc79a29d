"""Allow-list rules and scrubbing of the de-identified export, one resource at a time
(https://hl7.org/fhir/R4/security-labels.html)."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_service.errors import InvalidRequest
from fhir_service.export.deid_rules import load_rules, parse_rules
from fhir_service.export.deid_text import scrub, vocabulary
from fhir_service.export.deidentify import Deidentifier

LOINC = {"system": "http://loinc.org", "code": "8480-6", "display": "Systolic blood pressure"}


def _deid(rules: dict[str, Any] | None = None) -> Deidentifier:
    parsed = parse_rules(rules, "test") if rules is not None else load_rules()
    return Deidentifier("k", lambda r: {"p1"}, reference_year=2026, rules=parsed)


def test_unknown_and_unlisted_elements_are_removed_and_counted() -> None:
    deid = _deid({"keep": {"Observation": ["status", "component.code"]}})
    out = deid.apply(
        {
            "resourceType": "Observation",
            "id": "o1",
            "status": "final",
            "code": {"coding": [LOINC]},
            "futureElement": "Ada Lovelace",
            "component": [
                {"code": {"coding": [LOINC], "text": "taken by Ada"}, "valueString": "Ada"}
            ],
        }
    )
    assert out == {
        "resourceType": "Observation",
        "id": deid.pseudonym("Observation", "o1"),
        "status": "final",
        "component": [{"code": {"coding": [LOINC]}}],
    }
    removed = deid.report()["removed"]
    assert removed == {
        "Observation.code": 1,
        "Observation.(unknown element)": 1,
        "Observation.component.code.text": 1,
        "Observation.component.valueString": 1,
    }


def test_rules_cannot_keep_identifying_types() -> None:
    deid = _deid(
        {
            "keep": {"Patient": ["name", "identifier", "telecom", "address", "gender", "text"]},
            "text": {"Patient": ["*"]},
        }
    )
    out = deid.apply(
        {
            "resourceType": "Patient",
            "id": "p1",
            "name": [{"family": "Lovelace", "given": ["Ada"]}],
            "identifier": [{"value": "12345"}],
            "telecom": [{"system": "phone", "value": "555-0100"}],
            "address": [{"city": "London"}],
            "gender": "female",
            "text": {"status": "generated", "div": "<div>Ada</div>"},
        }
    )
    assert set(out) == {"resourceType", "id", "gender"}


def test_kept_text_is_scrubbed_and_counted() -> None:
    deid = _deid(
        {
            "keep": {"MedicationRequest": ["status", "dosageInstruction"]},
            "text": {"MedicationRequest": ["dosageInstruction.text"]},
        }
    )
    out = deid.apply(
        {
            "resourceType": "MedicationRequest",
            "id": "m1",
            "status": "active",
            "dosageInstruction": [
                {"text": "Take 1 tablet daily from 3 May 2021, as Dr. Okafor said", "sequence": 1}
            ],
        }
    )
    assert out["dosageInstruction"] == [
        {"text": "Take 1 tablet daily from [DATE], as [NAME] said", "sequence": 1}
    ]
    assert deid.report()["scrubbed"] == {"MedicationRequest.dosageInstruction.text": 1}


def test_scrub_keeps_clinical_words_and_removes_the_rest() -> None:
    words = vocabulary(["Essential hypertension"])
    assert scrub("Essential hypertension, well controlled", [], words) == (
        "Essential hypertension, well controlled"
    )
    text = "Seen by Marisol Quenneville (marisol@example.org, +1 303 555 0142) on 2021-03-12."
    assert scrub(text, ["Quenneville"], frozenset()) == (
        "[NAME] by [NAME] [NAME] ([EMAIL], [PHONE]) on [DATE]."
    )
    assert scrub("MRN A1234567, SSN 123-45-6789, see https://x.example/p/1", [], words) == (
        "MRN [ID], SSN [ID], see [URL]"
    )


def test_malformed_rules_are_refused() -> None:
    for rules in ({}, {"keep": []}, {"keep": {"Patient": "gender"}}, {"keep": {}, "x": 1}):
        with pytest.raises(InvalidRequest):
            parse_rules(rules, "test")


def test_references_keep_only_resource_types() -> None:
    deid = _deid({"keep": {"Observation": ["subject", "performer", "hasMember"]}})
    out = deid.apply(
        {
            "resourceType": "Observation",
            "id": "o1",
            "subject": {"reference": "Patient/p1"},
            "performer": [{"reference": "Lovelace/Ada"}, {"reference": "https://x.org/Patient/1"}],
            "hasMember": [{"reference": "urn:uuid:0e7d2f0c-2d1b-4c1e-9e0f-1c2d3e4f5a6b"}],
        }
    )
    assert out == {
        "resourceType": "Observation",
        "id": deid.pseudonym("Observation", "o1"),
        "subject": {"reference": f"Patient/{deid.pseudonym('Patient', 'p1')}"},
    }
    assert deid.report()["removed"] == {
        "Observation.performer.reference": 2,
        "Observation.hasMember.reference": 1,
    }
