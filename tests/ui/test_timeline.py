"""The patients page and the timeline of the example case, in headless Chromium.

Expected facts come from the case report (examples/ivc-leiomyosarcoma/case.yaml and the
published report it transcribes): day 0 is the day of surgery, loaded here with the anchor
date 2022-03-01; the recurrence is at month 12, the lung metastases at month 17 and the
last assessment (stable) about month 21.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.ui.conftest import Watched, screenshot

# The course as a clinician tells it, each step found by the words of its label.
CLINICAL_ORDER = [
    ("presentation", "Lower limb swelling"),
    ("imaging", "Contrast-enhanced CT of the liver"),
    ("multidisciplinary consultation", "Multidisciplinary consultation"),
    ("surgery on day 0", "Ex-vivo liver resection and autotransplantation"),
    ("intensive care", "Intensive care unit stay"),
    ("adjuvant radiotherapy", "Adjuvant radiotherapy"),
    ("first chemotherapy", "Doxorubicin + ifosfamide"),
    ("its marrow suppression", "Bone marrow suppression"),
    ("second chemotherapy", "Doxorubicin + dacarbazine"),
    ("month 12 recurrence", "Tumour recurrence with liver metastases"),
    ("tislelizumab and anlotinib", "Tislelizumab + anlotinib"),
    ("month 17 lung metastases", "Lung metastases"),
    ("PRaG", "PRaG radiotherapy to the liver"),
    ("month 21 stable disease", "No significant progression"),
]


def _open_timeline(watched: Watched, origin: str) -> Any:
    page = watched.page
    page.goto(f"{origin}/ui")
    page.wait_for_selector(".patient-link")
    page.click(".patient-link")
    page.wait_for_selector("main[data-ready='true']", state="attached", timeout=60_000)
    return page


def _event(page: Any, words: str) -> Any:
    locator = page.locator("#timeline .event", has_text=words)
    assert locator.count() >= 1, f"no event labelled {words!r}"
    return locator.first


def test_patients_page_lists_the_case_patient(laptop: Watched, served_case: str) -> None:
    page = laptop.page
    page.goto(f"{served_case}/ui")
    page.wait_for_selector(".patient-link")
    assert page.locator(".patient-link").count() == 1
    assert "female" in page.inner_text("#patients")
    screenshot(page, "patients")
    page.click(".patient-link")
    page.wait_for_url("**/ui/patients/*")
    assert laptop.script_errors() == []


def test_timeline_tells_the_case_in_clinical_order(laptop: Watched, served_case: str) -> None:
    page = _open_timeline(laptop, served_case)
    assert "leiomyosarcoma of the inferior vena cava" in page.inner_text("#patient-title")
    lefts = []
    for step, words in CLINICAL_ORDER:
        box = _event(page, words).bounding_box()
        assert box is not None, step
        lefts.append((box["x"], step))
    for (before, first), (after, second) in itertools.pairwise(lefts):
        assert before < after, f"{first} is not drawn before {second}: {lefts}"

    # Anlotinib continues after the second line, through PRaG, still active at the end.
    maintenance = _event(page, "Anlotinib continued orally")
    assert "ongoing" in (maintenance.get_attribute("class") or "")
    kept = maintenance.bounding_box()
    second_line = _event(page, "Tislelizumab + anlotinib").bounding_box()
    prag = _event(page, "PRaG radiotherapy to the liver").bounding_box()
    stable = _event(page, "No significant progression").bounding_box()
    assert kept and second_line and prag and stable
    assert kept["x"] > second_line["x"]
    assert kept["x"] + kept["width"] >= prag["x"] + prag["width"]
    assert kept["x"] + kept["width"] >= stable["x"] + stable["width"] - 2

    # The first chemotherapy was stopped after its two cycles.
    first_line = _event(page, "Doxorubicin + ifosfamide")
    assert "stopped" in first_line.inner_text()
    assert first_line.locator(".cycle").all_inner_texts() == ["C1", "C2"]

    # Dated events show their date; undated ones are dashed and say what the record says.
    operation = _event(page, "Ex-vivo liver resection")
    assert "2022-03-01" in operation.inner_text()
    assert "undated" not in (operation.get_attribute("class") or "")
    radiotherapy = _event(page, "Adjuvant radiotherapy")
    assert "after day 0" in radiotherapy.inner_text()
    assert "undated" in (radiotherapy.get_attribute("class") or "")
    assert "2023-03-01" in _event(page, "Tumour recurrence").inner_text()
    assert "2023-08-01" in _event(page, "Lung metastases").inner_text()
    assert "4 d" in _event(page, "Intensive care unit stay").inner_text()
    assert "15 d" in _event(page, "Hospitalization for surgery").inner_text()
    assert "no date" in page.inner_text("#legend")
    bands = page.locator("#timeline .band").all_inner_texts()
    assert any("day 0" in band and "2022-03-01" in band for band in bands), bands

    labs = page.inner_text("#labs")
    for value in ("180 U/L", "80 U/L", "14.8 mmol/L"):
        assert value in labs
    assert page.locator("#labs .flag-H").count() == 3
    assert "Corrected reading: 14.8 umol/L" in labs

    screenshot(page, "timeline")
    page.evaluate("document.getElementById('timeline-scroll').style.overflow = 'visible'")
    width = page.evaluate("document.getElementById('timeline').scrollWidth")
    page.set_viewport_size({"width": int(width) + 60, "height": 900})
    screenshot(page, "timeline-whole")
    assert laptop.script_errors() == []


def test_clicking_an_event_shows_its_resource(laptop: Watched, served_case: str) -> None:
    page = _open_timeline(laptop, served_case)
    _event(page, "Primary leiomyosarcoma").click()
    page.wait_for_selector("#resource-json")
    shown = json.loads(page.inner_text("#resource-json"))
    assert shown["resourceType"] == "Condition"
    stored = httpx.get(f"{served_case}/fhir/Condition/{shown['id']}").json()
    assert shown == stored
    concepts = page.inner_text("#detail .concepts")
    assert "363346000" in concepts and "SNOMED CT" in concepts
    assert "C49.4" in concepts and "ICD-10-CM" in concepts
    assert "8890/3" in concepts
    assert "null" not in page.inner_text("#detail").split("Coded concepts")[0]
    screenshot(page, "timeline-detail")

    _event(page, "Doxorubicin + ifosfamide").click()
    expect(page.locator("#resource-json")).to_contain_text('"resourceType": "CarePlan"')
    assert "Cycle 2" in page.inner_text("#detail")
    page.locator("#detail .related button", has_text="Ifosfamide").first.click()
    expect(page.locator("#resource-json")).to_contain_text(
        '"resourceType": "MedicationAdministration"'
    )
    assert laptop.script_errors() == []


def test_timeline_on_a_phone(phone: Watched, served_case: str) -> None:
    page = _open_timeline(phone, served_case)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, "the page itself must not scroll sideways; the timeline does"
    screenshot(page, "timeline-phone")
    assert phone.script_errors() == []
