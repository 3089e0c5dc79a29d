"""Encounters of the IVC case: the multidisciplinary consultation, a 15-day hospital
stay without dates, and a 4-day ICU stay from the day of surgery."""

from __future__ import annotations

import base64
from typing import Any

from mappings.context import MappingContext

from .conftest import ANCHOR

CTX = MappingContext("ivc-leiomyosarcoma", ANCHOR)
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def find(resources: list[dict[str, Any]], rtype: str, key: str) -> dict[str, Any]:
    rid = CTX.resource_id(rtype, key)
    return next(r for r in resources if r["resourceType"] == rtype and r["id"] == rid)


def ref(rtype: str, key: str) -> str:
    return f"urn:uuid:{CTX.resource_id(rtype, key)}"


def note_of(resources: list[dict[str, Any]], encounter_key: str) -> str:
    doc = find(resources, "DocumentReference", f"{encounter_key}-note")
    assert doc["context"]["encounter"] == [{"reference": ref("Encounter", encounter_key)}]
    return base64.b64decode(doc["content"][0]["attachment"]["data"]).decode("utf-8")


def test_hospital_stay_of_15_days_without_invented_dates(resources: list[dict[str, Any]]) -> None:
    stay = find(resources, "Encounter", "hospital-stay")
    assert stay["class"] == {"system": ACT_CODE, "code": "IMP", "display": "inpatient encounter"}
    assert stay["length"] == {
        "value": 15,
        "unit": "days",
        "system": "http://unitsofmeasure.org",
        "code": "d",
    }
    assert "period" not in stay
    assert stay["reasonReference"] == [{"reference": ref("Condition", "ivc-leiomyosarcoma")}]
    assert "15 days" in note_of(resources, "hospital-stay")


def test_icu_stay_of_4_days_from_the_day_of_surgery(resources: list[dict[str, Any]]) -> None:
    icu = find(resources, "Encounter", "icu-stay")
    assert icu["partOf"] == {"reference": ref("Encounter", "hospital-stay")}
    assert icu["type"][0]["coding"][0]["code"] == "305351004"
    assert icu["serviceType"]["text"] == "Intensive care"
    assert {k: v for k, v in icu["period"].items() if not k.startswith("_")} == {
        "start": "2022-03-01",
        "end": "2022-03-05",
    }
    assert icu["length"]["value"] == 4 and icu["length"]["code"] == "d"
    assert "general ward" in note_of(resources, "icu-stay")


def test_multidisciplinary_consultation(resources: list[dict[str, Any]]) -> None:
    mdt = find(resources, "Encounter", "mdt-consultation")
    assert mdt["status"] == "finished"
    assert mdt["class"]["code"] == "AMB"
    assert mdt["type"][0]["text"] == "Multidisciplinary consultation"
    assert mdt["participant"] == [{"type": [{"text": "Multidisciplinary team"}]}]
    assert mdt["reasonReference"] == [{"reference": ref("Condition", "ivc-leiomyosarcoma")}]
    assert "period" not in mdt
    assert "before day 0" in note_of(resources, "mdt-consultation")
