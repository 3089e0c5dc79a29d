"""Imaging studies and the pathology report as DiagnosticReports."""

from __future__ import annotations

from typing import Any

import pytest

from mappings.diagnostic_report import NOTE_EXTENSION, map_diagnostic_reports

from .mapped import DAR, LOINC, SCT, by_key, codes_of, run, url


@pytest.fixture(scope="module")
def reports(ivc_case: Any) -> list[dict[str, Any]]:
    return run(ivc_case, map_diagnostic_reports)


def _notes(report: dict[str, Any]) -> str:
    return " | ".join(
        e["valueAnnotation"]["text"]
        for e in report.get("extension", [])
        if e["url"] == NOTE_EXTENSION
    )


@pytest.mark.parametrize(
    ("key", "loinc", "modality"),
    [
        ("ct-liver", "24815-3", "CT"),
        ("ct-angiography-pelvis", "30623-3", "CT"),
        ("mri-abdomen", "24557-1", "MR"),
        ("ct-followup", "79103-8", "CT"),
    ],
)
def test_imaging_reports_with_loinc_codes(
    ivc_case: Any, reports: list[dict[str, Any]], key: str, loinc: str, modality: str
) -> None:
    r = by_key(ivc_case, reports, "DiagnosticReport", key)
    assert codes_of(r["code"]) == {(LOINC, loinc)}
    categories = {c["coding"][0]["code"] for c in r["category"]}
    assert categories == {"RAD", modality}
    assert r["_effectiveDateTime"]["extension"][0]["url"] == DAR  # undated in the report


def test_cinematic_rendering_is_text_only(ivc_case: Any, reports: list[dict[str, Any]]) -> None:
    r = by_key(ivc_case, reports, "DiagnosticReport", "ct-cinematic-rendering")
    assert "coding" not in r["code"]
    assert "cinematic rendering" in r["code"]["text"]
    assert "Figure 1C" in _notes(r)


def test_mri_conclusion_and_findings(ivc_case: Any, reports: list[dict[str, Any]]) -> None:
    r = by_key(ivc_case, reports, "DiagnosticReport", "mri-abdomen")
    assert r["conclusion"] == "Primary IVC leiomyosarcoma extending into the right hepatic vein"
    assert len(r["result"]) == 4  # four MRI findings (Figure 2A-2D)
    assert {"reference": url(ivc_case, "Observation", "mri-dwi-high-signal")} in r["result"]


def test_surgical_pathology_report(ivc_case: Any, reports: list[dict[str, Any]]) -> None:
    r = by_key(ivc_case, reports, "DiagnosticReport", "pathology-report")
    assert codes_of(r["code"]) == {(LOINC, "11529-5")}
    assert r["specimen"] == [{"reference": url(ivc_case, "Specimen", "resected-specimen")}]
    assert {"reference": url(ivc_case, "Observation", "tumour-size")} in r["result"]
    assert r["conclusion"] == "Primary IVC leiomyosarcoma"
    assert (SCT, "363346000") in codes_of(r["conclusionCode"][0])
    assert "after day 0" in _notes(r)
