"""Schedules of the third example case, checked against counts and doses worked out here
from the case's facts: gemcitabine 1000 mg/m2 and cisplatin 25 mg/m2 on days 1 and 8 of
21-day cycles, BSA 1.68 m2, 8 cycles planned, 4 given (gemcitabine 800 mg/m2 in cycle 4,
1340 mg given), stopped for grade 3 thrombocytopenia; then ivosidenib 500 mg once daily,
continuous, from day +91, still taken."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from fhir_service.validation.engine import validate_json_text
from fhir_service.validation.profile import definitions_from_cache
from mappings.bundle import build_bundle
from mappings.case.loader import load_case
from mappings.context import MappingContext
from tests.packages.cache import package_root

from .conftest import REPO
from .project_package import cache_with_project_package

__all__ = ["package_root"]

CASE = REPO / "examples" / "synthetic-intrahepatic-cholangiocarcinoma" / "case.yaml"
ANCHOR = date(2024, 1, 15)
CTX = MappingContext("synthetic-intrahepatic-cholangiocarcinoma", ANCHOR)
BSA = 1.68
PLANNED, GIVEN, DAYS, LENGTH = 8, 4, (1, 8), 21


@pytest.fixture(scope="module")
def bundles() -> dict[str, dict[str, Any]]:
    case = load_case(CASE)
    return {kind: build_bundle(case, ANCHOR, kind) for kind in ("collection", "transaction")}


@pytest.fixture(scope="module")
def resources(bundles: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundles["collection"]["entry"]]


def find(resources: list[dict[str, Any]], rtype: str, key: str) -> dict[str, Any]:
    rid = CTX.resource_id(rtype, key)
    return next(r for r in resources if r["resourceType"] == rtype and r["id"] == rid)


def admins_of(resources: list[dict[str, Any]], drug_key: str) -> list[dict[str, Any]]:
    url = CTX.full_url("MedicationRequest", drug_key)
    return [
        r
        for r in resources
        if r["resourceType"] == "MedicationAdministration" and r["request"]["reference"] == url
    ]


def qty(q: dict[str, Any]) -> tuple[float, str]:
    assert q["system"] == "http://unitsofmeasure.org"
    return q["value"], q["code"]


def test_one_administration_per_day_of_each_given_cycle_with_its_own_dose(
    resources: list[dict[str, Any]],
) -> None:
    expected_gem = {
        (c, d): (1340.0 if c == 4 else round(1000 * BSA, 6)) for c in range(1, 5) for d in DAYS
    }
    expected_cis = {(c, d): round(25 * BSA, 6) for c in range(1, GIVEN + 1) for d in DAYS}
    for drug, expected in (("gc-gemcitabine", expected_gem), ("gc-cisplatin", expected_cis)):
        admins = admins_of(resources, drug)
        assert len(admins) == GIVEN * len(DAYS) == len(expected)
        for (cycle, day), mg in expected.items():
            admin = find(resources, "MedicationAdministration", f"{drug}-c{cycle}-d{day}")
            value, unit = qty(admin["dosage"]["dose"])
            assert (pytest.approx(mg), "mg") == (value, unit)
            assert admin["status"] == "completed"


def test_cycle_1_days_are_dated_from_the_course_start_later_cycles_are_not(
    resources: list[dict[str, Any]],
) -> None:
    for day in DAYS:
        admin = find(resources, "MedicationAdministration", f"gc-cisplatin-c1-d{day}")
        assert admin["effectiveDateTime"] == (ANCHOR + timedelta(days=day - 1)).isoformat()
        mark = admin["_effectiveDateTime"]["extension"][0]["extension"][0]
        assert mark == {"url": "relativeTime", "valueString": f"day 0, cycle 1 day {day}"}
    later = find(resources, "MedicationAdministration", "gc-cisplatin-c2-d8")
    assert "effectiveDateTime" not in later
    assert later["effectivePeriod"]["extension"][0]["valueCode"] == "unknown"


def test_days_1_and_8_of_a_21_day_cycle_is_two_per_21_days_not_every_day(
    resources: list[dict[str, Any]],
) -> None:
    request = find(resources, "MedicationRequest", "gc-cisplatin")
    [dosage] = request["dosageInstruction"]
    repeat = dosage["timing"]["repeat"]
    assert (repeat["frequency"], repeat["period"], repeat["periodUnit"]) == (2, LENGTH, "d")
    assert repeat["count"] == PLANNED * len(DAYS)
    assert repeat["boundsPeriod"]["start"] == ANCHOR.isoformat()
    days = [e["valueInteger"] for e in dosage["timing"]["extension"]]
    assert days == list(DAYS)


def test_planned_versus_given_and_the_coded_stop_reason(resources: list[dict[str, Any]]) -> None:
    request = find(resources, "MedicationRequest", "gc-gemcitabine")
    assert request["status"] == "stopped"
    assert request["statusReason"]["coding"][0]["code"] == "407563006"
    # The order covers the 8 planned cycles: cycles 1-3, cycle 4 (reduced), cycles 5-8.
    runs = [(d["sequence"], d["timing"]["repeat"]["count"]) for d in request["dosageInstruction"]]
    assert runs == [(1, 3 * 2), (2, 1 * 2), (3, 4 * 2)]
    assert sum(count for _, count in runs) == PLANNED * len(DAYS)
    assert "8 cycles planned, 4 given" in request["note"][0]["text"]
    plan = find(resources, "CarePlan", "gem-cis")
    assert plan["status"] == "revoked"
    assert any("8 cycles planned, 4 given" in n["text"] for n in plan["note"])
    event = find(resources, "AdverseEvent", "thrombocytopenia")
    suspects = {s["instance"]["reference"] for s in event["suspectEntity"]}
    assert len(suspects) == 2 * GIVEN * len(DAYS)


def test_doses_per_body_surface_area_stay_as_ordered_and_say_so(
    resources: list[dict[str, Any]],
) -> None:
    request = find(resources, "MedicationRequest", "gc-gemcitabine")
    first = request["dosageInstruction"][0]
    ordered, calculated = first["doseAndRate"]
    assert ordered["type"]["coding"][0]["code"] == "ordered"
    assert qty(ordered["doseQuantity"]) == (1000, "mg/m2")
    assert calculated["type"]["coding"][0]["code"] == "calculated"
    assert qty(calculated["doseQuantity"]) == (pytest.approx(1000 * BSA), "mg")
    basis = [e for e in request["extension"] if e["url"].endswith("mcode-normalization-basis")]
    assert basis[0]["valueCodeableConcept"]["coding"][0]["code"] == "301898006"
    admin = find(resources, "MedicationAdministration", "gc-gemcitabine-c1-d1")
    assert any("1.68 m2" in n["text"] for n in admin["note"])


def test_continuous_once_daily_is_one_open_ended_administration(
    resources: list[dict[str, Any]],
) -> None:
    request = find(resources, "MedicationRequest", "ivo-ivosidenib")
    assert request["status"] == "active"
    assert request["courseOfTherapyType"]["coding"][0]["code"] == "continuous"
    [dosage] = request["dosageInstruction"]
    repeat = dosage["timing"]["repeat"]
    start = (ANCHOR + timedelta(days=91)).isoformat()
    assert (repeat["frequency"], repeat["period"], repeat["periodUnit"]) == (1, 1, "d")
    assert repeat["boundsPeriod"]["start"] == start and "end" not in repeat["boundsPeriod"]
    assert "count" not in repeat and "extension" not in dosage["timing"]
    [admin] = admins_of(resources, "ivo-ivosidenib")
    assert admin["status"] == "in-progress"
    assert {k: v for k, v in admin["effectivePeriod"].items() if not k.startswith("_")} == {
        "start": start
    }
    assert qty(admin["dosage"]["dose"]) == (500, "mg")


def test_maps_and_validates_with_no_error_in_both_bundle_types(
    bundles: dict[str, dict[str, Any]], package_root: Path, tmp_path: Path
) -> None:
    definitions = definitions_from_cache(cache_with_project_package(package_root, tmp_path))
    for kind, bundle in bundles.items():
        assert bundle["type"] == kind
        issues = validate_json_text(orjson.dumps(bundle).decode(), definitions=definitions)
        errors = [
            f"{i.expression}: {i.diagnostics}" for i in issues if i.severity in ("error", "fatal")
        ]
        assert errors == []
