"""Procedures and Devices of the IVC case: facts from the case report.

Expected values are read from the report: the ELRA operation on day 0 (about 11 h),
its three parts, no pump and no cell saver, 16 units of red cells, 2200 mL of plasma
and 10 units of cryoprecipitate, ventilation and antibiotics in the ICU, palliative
radiotherapy to the liver and lung metastases (PRaG).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fhir_service.validation.profile import check_profile, definitions_from_cache
from mappings.context import MappingContext
from tests.packages.cache import package_root

from .conftest import ANCHOR

__all__ = ["package_root"]

SNOMED = "http://snomed.info/sct"
INTENT_URL = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-procedure-intent"
DAR = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
CTX = MappingContext("ivc-leiomyosarcoma", ANCHOR)


def find(resources: list[dict[str, Any]], rtype: str, key: str) -> dict[str, Any]:
    rid = CTX.resource_id(rtype, key)
    return next(r for r in resources if r["resourceType"] == rtype and r["id"] == rid)


def ref(rtype: str, key: str) -> str:
    return f"urn:uuid:{CTX.resource_id(rtype, key)}"


def snomed_codes(cc: dict[str, Any]) -> set[str]:
    return {c["code"] for c in cc.get("coding", []) if c["system"] == SNOMED}


def intent_codes(resource: dict[str, Any]) -> set[str]:
    return {
        c["code"]
        for e in resource.get("extension", [])
        if e["url"] == INTENT_URL
        for c in e["valueCodeableConcept"]["coding"]
    }


def notes(resource: dict[str, Any]) -> str:
    return " | ".join(n["text"] for n in resource.get("note", []))


def test_the_operation_is_a_curative_cancer_surgery_on_day_0_lasting_about_11_hours(
    resources: list[dict[str, Any]],
) -> None:
    op = find(resources, "Procedure", "elra-operation")
    assert op["meta"]["profile"] == [
        "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-cancer-related-surgical-procedure"
    ]
    assert op["status"] == "completed"
    assert "ELRA" in op["code"]["text"] and "coding" not in op["code"]
    assert op["performedPeriod"]["start"] == "2022-03-01"
    # "The surgery lasted approximately 11 hours": a Duration, not only a note.
    (duration,) = [e for e in op["extension"] if e["url"].endswith(":procedure-duration")]
    assert duration == {
        "url": "urn:fhir-service:StructureDefinition:procedure-duration",
        "valueDuration": {
            "value": 11,
            "unit": "hours",
            "system": "http://unitsofmeasure.org",
            "code": "h",
        },
    }
    assert "~11 h (approximate)" in notes(op)
    assert intent_codes(op) == {"373808002"}
    assert op["reasonReference"] == [{"reference": ref("Condition", "ivc-leiomyosarcoma")}]
    assert {"10200004", "64131007"} <= set().union(*(snomed_codes(s) for s in op["bodySite"]))
    assert op["encounter"]["reference"] == ref("Encounter", "hospital-stay")


def test_the_fever_is_a_complication_of_the_operation(resources: list[dict[str, Any]]) -> None:
    op = find(resources, "Procedure", "elra-operation")
    assert snomed_codes(op["complication"][0]) == {"386661006"}
    assert op["complicationDetail"] == [{"reference": ref("Condition", "postoperative-fever")}]


def test_the_vascular_grafts_are_devices_of_the_operation_and_the_ivc_reconstruction(
    resources: list[dict[str, Any]],
) -> None:
    for proc_key, device_key in (
        ("elra-operation", "vascular-graft"),
        ("ivc-reconstruction", "ivc-graft"),
    ):
        proc = find(resources, "Procedure", proc_key)
        assert proc["focalDevice"][0]["manipulated"]["reference"] == ref("Device", device_key)
        device = find(resources, "Device", device_key)
        assert snomed_codes(device["type"]) == {"312288001"}
        assert device["patient"]["reference"] == ref("Patient", "patient")


def test_the_three_parts_of_the_operation(resources: list[dict[str, Any]]) -> None:
    parts = {
        "liver-ivc-resection": "107963000",
        "liver-autotransplantation": "18027006",
        "ivc-reconstruction": "30904006",
    }
    for key, code in parts.items():
        proc = find(resources, "Procedure", key)
        assert snomed_codes(proc["code"]) == {code}
        assert proc["partOf"] == [{"reference": ref("Procedure", "elra-operation")}]
        assert proc["performedDateTime"] == "2022-03-01"
        assert intent_codes(proc) == {"373808002"}


def test_no_pump_and_no_cell_saver_are_not_done_with_the_reasons_given(
    resources: list[dict[str, Any]],
) -> None:
    pump = find(resources, "Procedure", "no-extracorporeal-circulation")
    saver = find(resources, "Procedure", "no-cell-saver")
    for proc in (pump, saver):
        assert proc["status"] == "not-done"
        assert proc["partOf"] == [{"reference": ref("Procedure", "elra-operation")}]
        assert "performedDateTime" not in proc and "performedPeriod" not in proc
    assert "Extracorporeal circulation" in pump["code"]["text"]
    assert "ischaemic time" in pump["statusReason"]["text"]
    assert "cell saver" in saver["code"]["text"]
    assert "tumour cell dissemination" in saver["statusReason"]["text"]


def test_transfusions_with_product_and_amount(resources: list[dict[str, Any]]) -> None:
    # The report: "16 units of type B RHD(+) leukocyte-depleted red blood cell suspension,
    # 2200 mL of frozen plasma, and 10 units of cryoprecipitate".
    expected = {
        "transfusion-red-cells": ("116863004", 16, "{unit}", "Type B RhD(+)"),
        "transfusion-plasma": ("116861002", 2200, "mL", "Frozen plasma"),
        "transfusion-cryoprecipitate": ("116795008", 10, "{unit}", "Cryoprecipitate"),
    }
    for key, (code, value, unit, product) in expected.items():
        proc = find(resources, "Procedure", key)
        assert snomed_codes(proc["code"]) == {code}
        assert proc["partOf"] == [{"reference": ref("Procedure", "elra-operation")}]
        (used,) = proc["usedReference"]
        assert used["reference"] == ref("Substance", f"{key}-product")
        substance = find(resources, "Substance", f"{key}-product")
        assert substance["code"]["text"].startswith(product)
        (instance,) = substance["instance"]
        assert instance["quantity"]["value"] == value
        assert instance["quantity"]["code"] == unit
        assert instance["quantity"]["system"] == "http://unitsofmeasure.org"
        assert str(value) not in notes(proc)  # the amount is structured, not in a note


def test_icu_activities(resources: list[dict[str, Any]]) -> None:
    ventilation = find(resources, "Procedure", "ventilation")
    assert snomed_codes(ventilation["code"]) == {"40617009"}
    assert ventilation["encounter"]["reference"] == ref("Encounter", "icu-stay")
    antibiotics = find(resources, "Procedure", "antibiotic-therapy")
    assert "Antibiotic" in antibiotics["code"]["text"]
    assert antibiotics["reasonReference"] == [
        {"reference": ref("Condition", "postoperative-fever")}
    ]
    assert antibiotics["encounter"]["reference"] == ref("Encounter", "icu-stay")
    assert antibiotics["performedPeriod"]["extension"][0]["url"] == DAR


def test_prag_radiotherapy_to_liver_and_lung_is_palliative(
    resources: list[dict[str, Any]],
) -> None:
    for key, site, reason in (
        ("prag-radiotherapy-liver", "10200004", "liver-metastases"),
        ("prag-radiotherapy-lung", "39607008", "lung-metastases"),
    ):
        rt = find(resources, "Procedure", key)
        assert rt["meta"]["profile"] == [
            "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-radiotherapy-course-summary"
        ]
        assert "1217123003" in snomed_codes(rt["code"])
        assert rt["status"] == "completed"
        assert snomed_codes(rt["bodySite"][0]) == {site}
        assert intent_codes(rt) == {"363676003"}
        assert rt["reasonReference"] == [{"reference": ref("Condition", reason)}]
        assert rt["basedOn"] == [{"reference": ref("CarePlan", "prag")}]
        # "after month +17": no date, so the period says why it is absent.
        assert rt["performedPeriod"]["extension"][0]["valueCode"] == "unknown"
        assert "after month +17" in notes(rt)


def test_adjuvant_radiotherapy_has_no_invented_intent_or_date(
    resources: list[dict[str, Any]],
) -> None:
    rt = find(resources, "Procedure", "adjuvant-radiotherapy")
    assert intent_codes(rt) == set()
    assert rt["performedPeriod"]["extension"][0]["url"] == DAR
    assert "Treatment setting: adjuvant" in notes(rt)
    assert rt["reasonReference"] == [{"reference": ref("Condition", "ivc-leiomyosarcoma")}]


def test_procedures_meet_their_mcode_profiles(
    resources: list[dict[str, Any]], package_root: Path
) -> None:
    definitions = definitions_from_cache(package_root)
    checked = 0
    for resource in resources:
        if resource["resourceType"] != "Procedure":
            continue
        for url in resource.get("meta", {}).get("profile", []):
            issues = check_profile(resource, url, definitions)
            assert [i for i in issues if i.severity in ("error", "fatal")] == []
            checked += 1
    assert checked == 7  # the operation, its three parts, three radiotherapy courses
