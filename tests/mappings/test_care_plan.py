"""CarePlans: the medication courses in order, the PRaG regimen, the tumour board's decisions.

From the report: regimen 1 (doxorubicin + ifosfamide) after adjuvant radiotherapy, stopped
for bone marrow suppression and replaced by doxorubicin + dacarbazine; tislelizumab +
anlotinib at recurrence; PRaG = PD-1 inhibitor, radiotherapy to liver and lung, GM-CSF;
the MDT proposed ELRA because conventional surgery was unsuitable.
"""

from __future__ import annotations

from typing import Any

from mappings.context import MappingContext

from .conftest import ANCHOR

CTX = MappingContext("ivc-leiomyosarcoma", ANCHOR)


def find(resources: list[dict[str, Any]], rtype: str, key: str) -> dict[str, Any]:
    rid = CTX.resource_id(rtype, key)
    return next(r for r in resources if r["resourceType"] == rtype and r["id"] == rid)


def ref(rtype: str, key: str) -> dict[str, str]:
    return {"reference": f"urn:uuid:{CTX.resource_id(rtype, key)}"}


def notes(resource: dict[str, Any]) -> str:
    return " | ".join(n["text"] for n in resource.get("note", []))


def test_regimen_1_is_revoked_for_marrow_suppression(resources: list[dict[str, Any]]) -> None:
    plan = find(resources, "CarePlan", "chemo-doxorubicin-ifosfamide")
    assert plan["status"] == "revoked"
    assert plan["intent"] == "plan"
    assert plan["category"][0]["text"] == "chemotherapy"
    assert plan["category"][0]["coding"][0]["code"] == "367336001"
    assert "bone marrow suppression" in notes(plan) and "407563006" in notes(plan)
    assert "cycle length not stated" in notes(plan)
    assert "5 g days 1-2 and 7.5 g days 3-5" in notes(plan)
    assert ref("AdverseEvent", "bone-marrow-suppression") in plan["supportingInfo"]
    # It followed the adjuvant radiotherapy (a Procedure, so not a replaced CarePlan).
    assert ref("Procedure", "adjuvant-radiotherapy") in plan["supportingInfo"]
    assert "replaces" not in plan
    assert [a["reference"] for a in plan["activity"]] == [
        ref("MedicationRequest", "ai-doxorubicin"),
        ref("MedicationRequest", "ai-ifosfamide"),
    ]
    assert plan["period"]["extension"][0]["valueCode"] == "unknown"


def test_each_course_replaces_the_one_it_follows(resources: list[dict[str, Any]]) -> None:
    chain = [
        ("chemo-doxorubicin-dacarbazine", "chemo-doxorubicin-ifosfamide"),
        ("tislelizumab-anlotinib", "chemo-doxorubicin-dacarbazine"),
        ("anlotinib-maintenance", "tislelizumab-anlotinib"),
    ]
    for key, previous in chain:
        assert find(resources, "CarePlan", key)["replaces"] == [ref("CarePlan", previous)]


def test_tislelizumab_anlotinib_from_month_12_in_21_day_cycles(
    resources: list[dict[str, Any]],
) -> None:
    plan = find(resources, "CarePlan", "tislelizumab-anlotinib")
    assert plan["status"] == "completed"
    assert {k: v for k, v in plan["period"].items() if not k.startswith("_")} == {
        "start": "2023-03-01"
    }
    assert plan["category"][0]["text"] == "immunotherapy"
    assert "cycle length 21 d" in notes(plan) and "2 cycles" in notes(plan)
    assert plan["addresses"] == [ref("Condition", "liver-metastases")]
    assert find(resources, "CarePlan", "anlotinib-maintenance")["status"] == "active"


def test_prag_regimen_holds_radiotherapy_and_the_pd1_gm_csf_course(
    resources: list[dict[str, Any]],
) -> None:
    prag = find(resources, "CarePlan", "prag")
    outcomes = [o for a in prag["activity"] for o in a.get("outcomeReference", [])]
    assert {o["reference"] for o in outcomes} == {
        ref("Procedure", "prag-radiotherapy-liver")["reference"],
        ref("Procedure", "prag-radiotherapy-lung")["reference"],
    }
    assert prag["addresses"] == [
        ref("Condition", "liver-metastases"),
        ref("Condition", "lung-metastases"),
    ]
    assert "palliative" in notes(prag)
    systemic = find(resources, "CarePlan", "prag-pd1-gmcsf")
    assert systemic["partOf"] == [ref("CarePlan", "prag")]
    assert [a["reference"] for a in systemic["activity"]] == [
        ref("MedicationRequest", "prag-pd1-inhibitor"),
        ref("MedicationRequest", "prag-gm-csf"),
    ]


def test_mdt_decisions_are_a_plan_of_the_consultation(resources: list[dict[str, Any]]) -> None:
    plan = find(resources, "CarePlan", "mdt-consultation")
    assert plan["encounter"] == ref("Encounter", "mdt-consultation")
    details = [a["detail"]["description"] for a in plan["activity"]]
    assert len(details) == 3
    assert any("Conventional surgery unsuitable" in d for d in details)
    elra = next(a for a in plan["activity"] if "ELRA" in a["detail"]["description"])
    assert elra["outcomeReference"] == [ref("Procedure", "elra-operation")]
    diagnosis = plan["activity"][0]["detail"]
    assert ref("Condition", "ivc-leiomyosarcoma") in diagnosis["reasonReference"]
    assert ref("DiagnosticReport", "mri-abdomen") in diagnosis["reasonReference"]
    assert "before day 0" in notes(plan)
