"""``_summary`` / ``_elements`` on resource dicts (https://hl7.org/fhir/R4/search.html#summary).

Expected element sets follow the R4 spec pages' Σ flags: Patient.link, link.other,
link.type and Observation.component are summary; Patient.contact, Patient.link.extension
and Observation.note are not; Observation.status and Observation.code are mandatory.
"""

from __future__ import annotations

from fhir_service.fhir.summary import select_elements, summarize, unknown_elements


def test_summary_true_filters_inside_backbone_elements() -> None:
    patient = {
        "resourceType": "Patient",
        "id": "a",
        "contact": [{"name": {"family": "Y"}}],
        "link": [
            {
                "extension": [{"url": "http://example.org/x", "valueString": "v"}],
                "other": {"reference": "Patient/b"},
                "type": "seealso",
            }
        ],
    }
    summary = summarize(patient, "true")
    assert "contact" not in summary
    assert summary["link"] == [{"other": {"reference": "Patient/b"}, "type": "seealso"}]
    assert summary["meta"]["tag"][0]["code"] == "SUBSETTED"
    assert patient["link"][0]["extension"], "the input is not modified"


def test_summary_text_keeps_mandatory_elements() -> None:
    observation = {
        "resourceType": "Observation",
        "id": "o",
        "status": "final",
        "code": {"text": "c"},
        "note": [{"text": "n"}],
        "component": [{"code": {"text": "k"}}],
    }
    text = summarize(observation, "text")
    assert set(text) == {"resourceType", "id", "meta", "status", "code"}
    assert "note" not in summarize(observation, "true")
    assert "component" in summarize(observation, "true")


def test_elements_with_choice_names() -> None:
    observation = {
        "resourceType": "Observation",
        "id": "o",
        "status": "final",
        "code": {"text": "c"},
        "valueQuantity": {"value": 3},
        "note": [{"text": "n"}],
    }
    kept = select_elements(observation, ["value"])
    assert set(kept) == {"resourceType", "id", "meta", "status", "code", "valueQuantity"}
    assert unknown_elements("Observation", ["value", "note", "bogus"]) == ["bogus"]
