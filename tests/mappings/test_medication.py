"""MedicationRequests and MedicationAdministrations: the doses and schedules of the report.

Doxorubicin 40 mg ivgtt days 1-3 with ifosfamide 3.0 g civ days 1-5 (cycle 2: 5 g days
1-2, 7.5 g days 3-5), two cycles, stopped for bone marrow suppression; then doxorubicin
30 mg with dacarbazine 300 mg ivgtt days 1-3, two cycles; tislelizumab 200 mg day 1 with
anlotinib 12 mg po days 1-14, 21-day cycles x2, from month 12; anlotinib continued; PRaG
PD-1 inhibitor and GM-CSF without doses.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from fhir_service.fhir.models import dump_resource
from fhir_service.validation.profile import check_profile, definitions_from_cache
from mappings.bundle import map_case
from mappings.case.loader import load_case
from mappings.context import MappingContext
from tests.packages.cache import package_root

from .conftest import ANCHOR, REPO

__all__ = ["package_root"]

SNOMED = "http://snomed.info/sct"
CTX = MappingContext("ivc-leiomyosarcoma", ANCHOR)


def find(resources: list[dict[str, Any]], rtype: str, key: str) -> dict[str, Any]:
    rid = CTX.resource_id(rtype, key)
    return next(r for r in resources if r["resourceType"] == rtype and r["id"] == rid)


def ref(rtype: str, key: str) -> str:
    return f"urn:uuid:{CTX.resource_id(rtype, key)}"


def admins_of(resources: list[dict[str, Any]], drug_key: str) -> list[dict[str, Any]]:
    return [
        r
        for r in resources
        if r["resourceType"] == "MedicationAdministration"
        and r["request"]["reference"] == ref("MedicationRequest", drug_key)
    ]


def dose(dosage: dict[str, Any]) -> tuple[float, str]:
    q = dosage["dose"] if "dose" in dosage else dosage["doseAndRate"][0]["doseQuantity"]
    assert q["system"] == "http://unitsofmeasure.org"
    return q["value"], q["code"]


def given(admin: dict[str, Any]) -> tuple[float, str]:
    return dose(admin["dosage"])


def cycle_day(admin: dict[str, Any]) -> str:
    """``Cycle 2 day 3`` from the administration's first note."""
    return admin["note"][0]["text"].split(";")[0]


def test_doxorubicin_40_mg_ivgtt_days_1_to_3_in_both_cycles_of_regimen_1(
    resources: list[dict[str, Any]],
) -> None:
    request = find(resources, "MedicationRequest", "ai-doxorubicin")
    [instruction] = request["dosageInstruction"]
    assert instruction["text"].startswith("40 mg ivgtt, on days 1-3 of each cycle")
    assert dose(instruction) == (40, "mg")
    assert instruction["doseAndRate"][0]["type"]["coding"][0]["code"] == "ordered"
    assert instruction["route"]["coding"][0]["code"] == "47625008"
    timing = instruction["timing"]
    assert [e["valueInteger"] for e in timing["extension"]] == [1, 2, 3]
    # No cycle length and no planned count in the report: neither period nor count.
    assert "repeat" not in timing
    assert {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "3639"}.items() <= (
        request["medicationCodeableConcept"]["coding"][0].items()
    )
    admins = admins_of(resources, "ai-doxorubicin")
    # "40 mg ivgtt, days 1-3", "for two cycles": one administration a day, 2 x 3.
    expected = [f"Cycle {c} day {d}" for c in (1, 2) for d in (1, 2, 3)]
    assert sorted(cycle_day(a) for a in admins) == expected
    assert {given(a) for a in admins} == {(40, "mg")}


def test_ifosfamide_3_g_in_cycle_1_then_5_g_and_7_5_g_in_cycle_2(
    resources: list[dict[str, Any]],
) -> None:
    request = find(resources, "MedicationRequest", "ai-ifosfamide")
    steps = [(d["sequence"], dose(d)) for d in request["dosageInstruction"]]
    # Cycle 1, then cycle 2's two steps given in the same cycle (one sequence number).
    assert steps == [(1, (3, "g")), (2, (5, "g")), (2, (7.5, "g"))]
    assert "7.5 g" in request["note"][1]["text"]
    # "3.0 g civ, days 1-5 for the first cycle; 5 g civ days 1-2 and 7.5 g civ days 3-5
    # for the second cycle"
    report = {(1, d): 3.0 for d in range(1, 6)}
    report |= {(2, d): 5.0 for d in (1, 2)} | {(2, d): 7.5 for d in (3, 4, 5)}
    admins = admins_of(resources, "ai-ifosfamide")
    assert len(admins) == len(report) == 10
    for (cycle, day), grams in report.items():
        admin = find(resources, "MedicationAdministration", f"ai-ifosfamide-c{cycle}-d{day}")
        assert given(admin) == (grams, "g")
        assert cycle_day(admin) == f"Cycle {cycle} day {day}"


def test_regimen_1_stopped_for_marrow_suppression(resources: list[dict[str, Any]]) -> None:
    for key in ("ai-doxorubicin", "ai-ifosfamide"):
        request = find(resources, "MedicationRequest", key)
        assert request["status"] == "stopped"
        assert request["statusReason"]["coding"][0]["code"] == "407563006"
        assert "bone marrow suppression" in request["statusReason"]["text"]
        # The cycles that were given were completed: no stop reason on them (mCODE).
        for admin in admins_of(resources, key):
            assert admin["status"] == "completed" and "statusReason" not in admin


def test_doxorubicin_30_mg_and_dacarbazine_300_mg_two_cycles(
    resources: list[dict[str, Any]],
) -> None:
    doxo = find(resources, "MedicationRequest", "ad-doxorubicin")
    dtic = find(resources, "MedicationRequest", "ad-dacarbazine")
    assert doxo["dosageInstruction"][0]["text"].startswith("30 mg ivgtt, on days 1-3")
    assert dose(dtic["dosageInstruction"][0]) == (300, "mg")
    assert doxo["status"] == dtic["status"] == "completed"
    # Completed: all it ordered was given, two cycles of days 1-3.
    for request in (doxo, dtic):
        assert request["dosageInstruction"][0]["timing"]["repeat"] == {"count": 2 * 3}
    for key, mg in (("ad-doxorubicin", 30), ("ad-dacarbazine", 300)):
        admins = admins_of(resources, key)
        assert len(admins) == 2 * 3
        assert {given(a) for a in admins} == {(mg, "mg")}


def test_tislelizumab_200_mg_day_1_of_21_day_cycles_twice_with_anlotinib_12_mg_po(
    resources: list[dict[str, Any]],
) -> None:
    tisle = find(resources, "MedicationRequest", "ta-tislelizumab")
    [instruction] = tisle["dosageInstruction"]
    assert instruction["text"].startswith("200 mg ivgtt, on day 1 of each 21-day")
    repeat = instruction["timing"]["repeat"]
    assert {k: repeat[k] for k in ("count", "frequency", "period", "periodUnit")} == {
        "count": 2,
        "frequency": 1,
        "period": 21,
        "periodUnit": "d",
    }
    assert tisle["medicationCodeableConcept"]["coding"][0]["code"] == "L01FF09"
    anlo = find(resources, "MedicationRequest", "ta-anlotinib")
    [instruction] = anlo["dosageInstruction"]
    assert instruction["route"]["coding"][0]["code"] == "26643006"
    # days 1-14 of each 21-day cycle, two cycles: 14 per 21 days, never "every day".
    repeat = instruction["timing"]["repeat"]
    assert (repeat["frequency"], repeat["period"], repeat["periodUnit"]) == (14, 21, "d")
    assert repeat["count"] == 28
    assert [e["valueInteger"] for e in instruction["timing"]["extension"]] == list(range(1, 15))
    assert "coding" not in anlo["medicationCodeableConcept"]
    # Started at month 12 (2023-03-01 for day 0 = 2022-03-01): cycle 1 is dated, day by day.
    assert repeat["boundsPeriod"]["start"] == "2023-03-01"
    c1 = find(resources, "MedicationAdministration", "ta-tislelizumab-c1-d1")
    assert c1["effectiveDateTime"] == "2023-03-01"
    for day in range(1, 15):
        a = find(resources, "MedicationAdministration", f"ta-anlotinib-c1-d{day}")
        assert a["effectiveDateTime"] == (date(2023, 3, 1) + timedelta(days=day - 1)).isoformat()
        assert given(a) == (12, "mg")
    # Cycle 2 may have been delayed: not dated.
    c2 = find(resources, "MedicationAdministration", "ta-anlotinib-c2-d1")
    assert c2["effectivePeriod"]["extension"][0]["valueCode"] == "unknown"
    assert len(admins_of(resources, "ta-tislelizumab")) == 2
    assert len(admins_of(resources, "ta-anlotinib")) == 2 * 14
    for admin in admins_of(resources, "ta-tislelizumab"):
        assert admin["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "363676003"
        assert admin["reasonReference"] == [{"reference": ref("Condition", "liver-metastases")}]


def test_undated_administrations_say_the_date_is_unknown(resources: list[dict[str, Any]]) -> None:
    admin = find(resources, "MedicationAdministration", "ai-doxorubicin-c1-d1")
    assert admin["effectivePeriod"]["extension"][0]["valueCode"] == "unknown"
    assert "after day 0" in admin["note"][0]["text"]
    request = find(resources, "MedicationRequest", "ai-doxorubicin")
    assert request["_authoredOn"]["extension"][0]["valueCode"] == "unknown"


def test_anlotinib_maintenance_is_an_active_request_without_invented_administrations(
    resources: list[dict[str, Any]],
) -> None:
    request = find(resources, "MedicationRequest", "am-anlotinib")
    assert request["status"] == "active"
    assert "doseAndRate" not in request["dosageInstruction"][0]
    assert "not stated" in request["dosageInstruction"][0]["text"]
    assert admins_of(resources, "am-anlotinib") == []


def test_prag_pd1_inhibitor_and_gm_csf_have_text_only_doses_and_one_administration(
    resources: list[dict[str, Any]],
) -> None:
    for key in ("prag-pd1-inhibitor", "prag-gm-csf"):
        request = find(resources, "MedicationRequest", key)
        assert "doseAndRate" not in request["dosageInstruction"][0]
        admins = admins_of(resources, key)
        # The report gives no dose: mad-1 forbids a dosage without dose or rate, so the
        # administration has no dosage and says so in a note.
        assert len(admins) == 1 and "dosage" not in admins[0]
        assert any("Dosage in the report" in n["text"] for n in admins[0]["note"])
    gm_csf = find(resources, "MedicationRequest", "prag-gm-csf")
    assert "coding" not in gm_csf["medicationCodeableConcept"]


def test_requests_of_a_course_share_a_group_and_its_care_plan(
    resources: list[dict[str, Any]],
) -> None:
    doxo = find(resources, "MedicationRequest", "ai-doxorubicin")
    ifo = find(resources, "MedicationRequest", "ai-ifosfamide")
    assert doxo["groupIdentifier"] == ifo["groupIdentifier"]
    assert doxo["basedOn"] == [{"reference": ref("CarePlan", "chemo-doxorubicin-ifosfamide")}]
    other = find(resources, "MedicationRequest", "ad-doxorubicin")
    assert other["groupIdentifier"] != doxo["groupIdentifier"]


def test_medication_resources_meet_their_mcode_profiles(
    resources: list[dict[str, Any]], package_root: Path
) -> None:
    definitions = definitions_from_cache(package_root)
    checked = 0
    for resource in resources:
        if resource["resourceType"] not in ("MedicationRequest", "MedicationAdministration"):
            continue
        for url in resource["meta"]["profile"]:
            issues = check_profile(resource, url, definitions)
            assert [i for i in issues if i.severity in ("error", "fatal")] == []
            checked += 1
    # nine drugs; administrations: doxorubicin 2x3, ifosfamide 5+5, doxorubicin 2x3,
    # dacarbazine 2x3, tislelizumab 2x1, anlotinib 2x14, PD-1 inhibitor 1, GM-CSF 1
    assert checked == 9 + (6 + 10 + 6 + 6 + 2 + 28 + 1 + 1)


def test_the_sigmoid_case_maps_without_code_changes() -> None:
    case = load_case(REPO / "examples" / "synthetic-sigmoid-colon-cancer" / "case.yaml")
    anchor = date(2022, 3, 1)
    mapped = [dump_resource(r) for r in map_case(case, anchor)]
    ctx = MappingContext(case.case.id, anchor)
    admin = next(
        r
        for r in mapped
        if r["id"] == ctx.resource_id("MedicationAdministration", "capox-oxaliplatin-c1-d1")
    )
    # CAPOX starts at week 6: day 1 of cycle 1 is 2022-04-12.
    assert admin["effectiveDateTime"] == "2022-04-12"
    # 130 mg/m2 and no BSA in the case: the dose stays as ordered.
    assert admin["dosage"]["dose"]["code"] == "mg/m2"
    administrations = [r for r in mapped if r["resourceType"] == "MedicationAdministration"]
    by_drug = {
        name: [r for r in administrations if r["medicationCodeableConcept"]["text"] == name]
        for name in ("Oxaliplatin", "Capecitabine")
    }
    # Oxaliplatin day 1 of 4 cycles; capecitabine twice daily on days 1-14 of 4 cycles.
    assert len(by_drug["Oxaliplatin"]) == 4
    assert len(by_drug["Capecitabine"]) == 4 * 14 * 2
    colectomy = next(
        r for r in mapped if r["id"] == ctx.resource_id("Procedure", "sigmoid-colectomy")
    )
    assert colectomy["performedPeriod"]["start"] == "2022-03-01"  # day 0, ~3 h
    assert colectomy["encounter"]["reference"] == ctx.full_url("Encounter", "hospital-stay")
