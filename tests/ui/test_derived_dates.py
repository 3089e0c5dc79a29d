"""The timeline reads the relative-time extension (docs/mapping.md, "Derived dates") and
shows a derived date as derived: the time as the record states it, the date computed from
it, and day 0 with its date; a date without the mark stays a plain date. In headless
Chromium over real HTTP.

Expected values come from the case report (examples/ivc-leiomyosarcoma/case.yaml, loaded
with day 0 = 2022-03-01, the day of surgery): lung metastases at month +17, the operation
on day 0, the ICU stay of 4 days from day 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhir_service.api import create_app
from fhir_service.settings import Settings
from fhir_service.storage import upgrade
from tests.served import serve
from tests.ui.conftest import Watched, screenshot

RELATIVE_TIME = "urn:fhir-service:StructureDefinition:relative-time"


def _timeline(watched: Watched, origin: str, patient: str | None = None) -> Any:
    page = watched.page
    if patient is None:
        page.goto(f"{origin}/ui")
        page.wait_for_selector(".patient-link")
        page.click(".patient-link")
    else:
        page.goto(f"{origin}/ui/patients/{patient}")
    page.wait_for_selector("main[data-ready='true']", state="attached", timeout=60_000)
    return page


def _event(page: Any, words: str) -> Any:
    locator = page.locator("#timeline .event", has_text=words)
    assert locator.count() >= 1, f"no event labelled {words!r}"
    return locator.first


def test_the_case_dates_read_as_derived_from_day_0(laptop: Watched, served_case: str) -> None:
    page = _timeline(laptop, served_case)

    lung = _event(page, "Lung metastases")
    assert "derived" in (lung.get_attribute("class") or "").split()
    assert lung.locator(".event-time").inner_text() == "month +17 → 2023-08-01"
    lung.click()
    when = page.inner_text("#detail").split("\n")
    line = next(x for x in when if x.startswith("When:"))
    assert "2023-08-01" in line
    assert "derived date: month +17 from day 0 in the record" in line
    assert "day 0 = 2022-03-01, day of surgery" in line
    screenshot(page, "timeline-derived-date")

    surgery = _event(page, "Ex-vivo liver resection and autotransplantation")
    assert surgery.locator(".event-time").inner_text() == "day 0 → 2022-03-01"

    # What has no date in the record is still undated, not derived.
    marrow = _event(page, "Bone marrow suppression")
    classes = (marrow.get_attribute("class") or "").split()
    assert "undated" in classes and "derived" not in classes
    assert "derived" in page.inner_text("#legend")
    assert laptop.script_errors() == []


@pytest.fixture
def small_record(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A server holding one patient with a marked date (month +9 from day 0 = 2022-03-01)
    and an unmarked one: (origin, patient id)."""
    url = f"sqlite:///{tmp_path / 'fhir.sqlite3'}"
    upgrade(url)
    with serve(create_app(Settings(database_url=url, base_url=None))) as origin:
        base = f"{origin}/fhir"
        headers = {"Content-Type": "application/fhir+json"}
        patient = httpx.post(
            f"{base}/Patient", json={"resourceType": "Patient"}, headers=headers
        ).json()["id"]
        mark = {
            "url": RELATIVE_TIME,
            "extension": [
                {"url": "relativeTime", "valueString": "month +9"},
                {"url": "anchor", "valueString": "day of diagnosis"},
                {"url": "anchorDate", "valueDate": "2022-03-01"},
            ],
        }
        for text, date, extension in (
            ("Marked recurrence", "2022-12-01", {"extension": [mark]}),
            ("Plain finding", "2022-05-10", None),
        ):
            condition: dict[str, Any] = {
                "resourceType": "Condition",
                "code": {"text": text},
                "subject": {"reference": f"Patient/{patient}"},
                "onsetDateTime": date,
            }
            if extension:
                condition["_onsetDateTime"] = extension
            created = httpx.post(f"{base}/Condition", json=condition, headers=headers)
            assert created.status_code == 201, created.text
        yield origin, patient


def test_only_marked_dates_are_shown_as_derived(
    laptop: Watched, small_record: tuple[str, str]
) -> None:
    origin, patient = small_record
    page = _timeline(laptop, origin, patient)

    marked = _event(page, "Marked recurrence")
    assert "derived" in (marked.get_attribute("class") or "").split()
    assert marked.locator(".event-time").inner_text() == "month +9 → 2022-12-01"
    assert "month +9 from day 0" in (marked.get_attribute("title") or "")
    assert "day 0 = 2022-03-01, day of diagnosis" in (marked.get_attribute("title") or "")

    plain = _event(page, "Plain finding")
    assert "derived" not in (plain.get_attribute("class") or "").split()
    assert plain.locator(".event-time").inner_text() == "2022-05-10"
    # Day 0 comes from the mark, so the plain date also reads against it.
    assert "month +2)" in (plain.get_attribute("title") or "")
    assert laptop.script_errors() == []
