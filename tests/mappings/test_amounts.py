"""Amounts the case file structures stay structured: counts, lesion sizes."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from mappings.bundle import build_bundle
from mappings.case import CaseFileError
from mappings.case.loader import loads_case
from mappings.context import MappingContext

CASE = """\
schema_version: "1.0"
case: {id: amounts, title: Amounts}
source: {citation: Synthetic test case}
anchor: {event: day of surgery}
patient: {key: patient, age: {value: 50, unit: a}, age_at: day 0, sex: female}
imaging:
  - key: ct
    text: CT chest
    modality: CT
    when: month +3
    findings:
      - key: lung-nodule
        text: Lung metastasis, right lower lobe
        size: [{value: 14, unit: mm}, {value: 9, unit: mm}]
pathology:
  - key: path
    text: Pathology
    when: day +5
    specimen: {key: spec, text: Resected tumour}
    findings:
      - key: mitoses
        text: Mitotic count
        value: {value: 12, unit: "{mitoses}/(10.[HPF])"}
"""
ANCHOR = date(2022, 3, 1)
CTX = MappingContext("amounts", ANCHOR)


def _resources() -> list[dict[str, Any]]:
    bundle = build_bundle(loads_case(CASE), ANCHOR, "collection")
    return [e["resource"] for e in bundle["entry"]]


def _obs(resources: list[dict[str, Any]], key: str) -> dict[str, Any]:
    rid = CTX.resource_id("Observation", key)
    return next(r for r in resources if r["id"] == rid)


def test_a_count_per_10_hpf_is_a_ucum_quantity() -> None:
    mitoses = _obs(_resources(), "mitoses")
    assert mitoses["code"]["text"] == "Mitotic count"
    assert mitoses["valueQuantity"] == {
        "value": 12,
        "unit": "{mitoses}/(10.[HPF])",
        "system": "http://unitsofmeasure.org",
        "code": "{mitoses}/(10.[HPF])",
    }
    assert "valueCodeableConcept" not in mitoses


def test_a_lesion_size_on_imaging_is_a_tumour_size_observation() -> None:
    resources = _resources()
    nodule = _obs(resources, "lung-nodule")
    size = _obs(resources, "lung-nodule-size")
    assert nodule["hasMember"] == [{"reference": CTX.full_url("Observation", "lung-nodule-size")}]
    assert size["code"]["coding"][0]["code"] == "21889-1"
    components = [
        (c["code"]["coding"][0]["code"], c["valueQuantity"]["value"], c["valueQuantity"]["code"])
        for c in size["component"]
    ]
    assert components == [("33728-7", 14, "mm"), ("33729-5", 9, "mm")]
    # Not on a specimen and no Tumor named: mCODE's tumor size would need one of them.
    assert "meta" not in size
    assert size["effectiveDateTime"] == "2022-06-01"


def test_sizes_must_be_longest_first() -> None:
    with pytest.raises(CaseFileError, match="longest first"):
        loads_case(
            CASE.replace(
                "{value: 14, unit: mm}, {value: 9, unit: mm}",
                "{value: 9, unit: mm}, {value: 14, unit: mm}",
            )
        )
