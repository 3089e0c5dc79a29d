"""Nothing invented: negations with standard elements, grades coded, the cancer coded."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from fhir_service.validation.engine import validate_json_text
from fhir_service.validation.profile import definitions_from_cache
from mappings.bundle import build_bundle
from mappings.case import CaseFileError
from mappings.case.loader import loads_case
from mappings.context import MappingContext
from tests.packages.cache import package_root

from .conftest import ANCHOR
from .project_package import cache_with_project_package

__all__ = ["package_root"]

CASE = """\
schema_version: "1.0"
case: {id: negations, title: Negations}
source: {citation: Synthetic test case}
anchor: {event: day of surgery, procedure: surgery}
patient: {key: patient, age: {value: 50, unit: a}, age_at: day 0, sex: female}
diagnoses:
  - key: cancer
    text: Cancer
    codes: [snomed:363346000]
    role: primary
    verification_status: confirmed
    clinical_status: active
procedures:
  - key: surgery
    text: Hemicolectomy
    when: day 0
    reasons: [cancer]
    no_complications: uneventful postoperative course
  - key: no-transfusion
    text: Blood transfusion
    status: not-done
    status_reason: Not needed
    when: day 0
    part_of: surgery
medication_courses:
  - key: chemo
    text: Chemotherapy
    category: chemotherapy
    drugs: [{key: drug, text: Drug}]
    start: day +30
    status: completed
adverse_events:
  - key: neutropenia
    text: Neutropenia
    when: day +40
    caused_by: [chemo]
    grade: {scale: ctcae, value: "3"}
  - key: sepsis
    text: Sepsis
    when: day +41
    caused_by: [chemo]
    grade: {scale: ctcae, value: "4"}
"""
CTX = MappingContext("negations", date(2022, 3, 1))


def _resources(text: str = CASE) -> list[dict[str, Any]]:
    bundle = build_bundle(loads_case(text), date(2022, 3, 1), "collection")
    return [e["resource"] for e in bundle["entry"]]


def _find(resources: list[dict[str, Any]], rtype: str, key: str) -> dict[str, Any]:
    rid = CTX.resource_id(rtype, key)
    return next(r for r in resources if r["resourceType"] == rtype and r["id"] == rid)


def test_not_done_uses_status_and_reason_and_no_word_the_case_lacks() -> None:
    proc = _find(_resources(), "Procedure", "no-transfusion")
    assert proc["status"] == "not-done"
    assert proc["statusReason"] == {"text": "Not needed"}
    assert "performedDateTime" not in proc and "performedPeriod" not in proc
    assert "planned" not in str(proc).lower()


def test_no_complication_is_an_empty_list_with_nil_known() -> None:
    resources = _resources()
    (complications,) = [r for r in resources if r["resourceType"] == "List"]
    assert complications["id"] == CTX.resource_id("List", "surgery-complications")
    assert complications["emptyReason"]["coding"] == [
        {
            "system": "http://terminology.hl7.org/CodeSystem/list-empty-reason",
            "code": "nilknown",
            "display": "Nil Known",
        }
    ]
    assert complications["emptyReason"]["text"] == "uneventful postoperative course"
    assert "entry" not in complications
    assert complications["title"] == "Complications of: Hemicolectomy"
    assert complications["date"] == "2022-03-01"
    # No complication resource is made up.
    assert not [r for r in resources if r["resourceType"] == "AdverseEvent" and "Hemi" in str(r)]


def test_no_complications_and_complications_exclude_each_other() -> None:
    text = CASE.replace(
        "    no_complications: uneventful postoperative course\n",
        "    no_complications: none\n    complications: [{key: fever, text: Fever}]\n",
    )
    with pytest.raises(CaseFileError, match="exclude each other"):
        loads_case(text)


def test_ctcae_grade_3_is_coded_as_severe() -> None:
    event = _find(_resources(), "AdverseEvent", "neutropenia")
    assert event["severity"] == {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/adverse-event-severity",
                "code": "severe",
                "display": "Severe",
            }
        ],
        "text": "CTCAE grade 3",
    }


def test_ctcae_grade_4_gets_no_severity_code_but_keeps_the_grade() -> None:
    event = _find(_resources(), "AdverseEvent", "sepsis")
    assert "severity" not in event
    assert "Grade in the report: ctcae 4" in str(event["extension"])


def test_a_ctcae_grade_out_of_range_is_refused() -> None:
    with pytest.raises(CaseFileError, match="a CTCAE grade is 1, 2, 3, 4 or 5"):
        loads_case(CASE.replace('value: "3"', 'value: "III"'))


def test_the_ivc_primary_cancer_is_coded_with_histology_site_and_icd(
    resources: list[dict[str, Any]],
) -> None:
    ctx = MappingContext("ivc-leiomyosarcoma", ANCHOR)
    rid = ctx.resource_id("Condition", "ivc-leiomyosarcoma")
    cancer = next(r for r in resources if r["id"] == rid)
    codes = {(c["system"], c["code"]) for c in cancer["code"]["coding"]}
    # coding-reference.md: SNOMED 363346000 + morphology + bodySite (mCODE); ICD-10-CM C49.4.
    assert codes == {
        ("http://snomed.info/sct", "363346000"),
        ("http://hl7.org/fhir/sid/icd-10-cm", "C49.4"),
    }
    (histology,) = [e for e in cancer["extension"] if "histology" in e["url"]]
    morph = {(c["system"], c["code"]) for c in histology["valueCodeableConcept"]["coding"]}
    assert morph == {
        ("http://terminology.hl7.org/CodeSystem/icd-o-3", "8890/3"),
        ("http://snomed.info/sct", "1163022006"),
    }
    sites = {c["code"] for s in cancer["bodySite"] for c in s.get("coding", [])}
    assert "64131007" in sites  # inferior vena cava


def test_the_negations_case_validates_without_error(package_root: Path, tmp_path: Path) -> None:
    definitions = definitions_from_cache(cache_with_project_package(package_root, tmp_path))
    bundle = build_bundle(loads_case(CASE), date(2022, 3, 1), "collection")
    issues = validate_json_text(orjson.dumps(bundle).decode(), definitions=definitions)
    assert [i.diagnostics for i in issues if i.severity in ("error", "fatal")] == []
