"""The validation and status pages in headless Chromium."""

from __future__ import annotations

import json
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.ui.conftest import UNREACHABLE_REMOTE, Watched, screenshot

PATIENT = "urn:uuid:7d7a0a4e-2f3b-4a8e-9a51-000000000001"
MISSING = "urn:uuid:7d7a0a4e-2f3b-4a8e-9a51-00000000dead"


def broken_bundle() -> dict[str, Any]:
    """A transaction Bundle with three problems: a reference to an entry that is not there,
    a clinicalStatus code outside its required value set, and an Observation without its
    required status (https://hl7.org/fhir/R4/observation.html: status is 1..1)."""

    def post(full_url: str, resource: dict[str, Any]) -> dict[str, Any]:
        kind = resource["resourceType"]
        return {
            "fullUrl": full_url,
            "resource": resource,
            "request": {"method": "POST", "url": kind},
        }

    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            post(PATIENT, {"resourceType": "Patient", "gender": "female"}),
            post(
                "urn:uuid:7d7a0a4e-2f3b-4a8e-9a51-000000000002",
                {
                    "resourceType": "Condition",
                    "clinicalStatus": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                "code": "cured",
                            }
                        ]
                    },
                    "code": {"text": "Leiomyosarcoma"},
                    "subject": {"reference": PATIENT},
                },
            ),
            post(
                "urn:uuid:7d7a0a4e-2f3b-4a8e-9a51-000000000003",
                {
                    "resourceType": "Observation",
                    "code": {"text": "Tumour size"},
                    "subject": {"reference": MISSING},
                },
            ),
        ],
    }


def _row(rows: list[dict[str, str]], *fragments: str) -> dict[str, str]:
    """The issue row whose FHIRPath location holds every fragment."""
    found = [r for r in rows if all(f in r["location"] for f in fragments)]
    assert found, (fragments, rows)
    return found[0]


def test_validation_page_shows_each_problem_where_it_is(laptop: Watched, served_case: str) -> None:
    page = laptop.page
    text = json.dumps(broken_bundle(), indent=2)
    page.goto(f"{served_case}/ui/validate")
    page.fill("#source", text)
    page.click("#validate-button")
    page.wait_for_selector("#result:not([hidden])")
    assert page.inner_text("#verdict").startswith("Not valid")
    rows = page.eval_on_selector_all(
        "#issues tbody tr.issue",
        """rows => rows.map(r => ({
            severity: r.cells[0].innerText.trim().toLowerCase(),
            location: r.cells[1].innerText,
            line: r.dataset.line,
            message: r.cells[3].innerText}))""",
    )
    lines = text.split("\n")

    reference = _row(rows, "Bundle.entry[2]", ".subject")
    assert reference["severity"] == "error"
    assert "not locally contained" in reference["message"]
    assert '"subject"' in lines[int(reference["line"]) - 1]

    code = _row(rows, "Bundle.entry[1]", ".clinicalStatus")
    assert code["severity"] == "error"
    assert "value set" in code["message"]
    assert '"clinicalStatus"' in lines[int(code["line"]) - 1]

    required = [r for r in rows if "minimum required" in r["message"]]
    assert required and "Observation.status" in required[0]["message"]
    assert "entry[2]" in required[0]["location"]
    assert '"resource"' in lines[int(required[0]["line"]) - 1]
    marked = page.locator("#listing .line.marked").count()
    assert marked >= 3
    screenshot(page, "validate")
    assert laptop.script_errors() == []


def test_validation_page_says_valid_for_a_valid_resource(laptop: Watched, served_case: str) -> None:
    page = laptop.page
    page.goto(f"{served_case}/ui/validate")
    page.fill("#source", json.dumps({"resourceType": "Patient", "gender": "female"}))
    page.click("#validate-button")
    page.wait_for_selector("#result:not([hidden])")
    assert page.inner_text("#verdict").startswith("Valid")
    assert laptop.script_errors() == []


def test_validation_page_on_a_phone(phone: Watched, served_case: str) -> None:
    page = phone.page
    page.goto(f"{served_case}/ui/validate")
    page.fill("#source", json.dumps(broken_bundle(), indent=2))
    page.click("#validate-button")
    page.wait_for_selector("#result:not([hidden])")
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 1
    screenshot(page, "validate-phone")
    assert phone.script_errors() == []


def test_status_page_shows_sync_runs_and_the_jobs_of_every_kind(
    laptop: Watched, served_case: str
) -> None:
    page = laptop.page
    started = httpx.post(
        f"{served_case}/sync/runs",
        json={"direction": "push", "remote": UNREACHABLE_REMOTE},
    )
    reindex = httpx.post(f"{served_case}/fhir/$reindex?type=Patient")
    assert started.status_code == 202, started.text
    assert reindex.status_code == 202, reindex.text
    page.goto(f"{served_case}/ui/status")
    expect(page.locator("#jobs-state")).not_to_contain_text("Asking", timeout=60_000)
    expect(page.locator("#sync-state")).not_to_contain_text("Asking", timeout=60_000)
    run = started.json()
    if page.locator("#run-lookup").is_visible():
        page.fill("#run-id", str(run["id"]))
        page.click("#run-lookup button")
    page.wait_for_selector("#sync-runs:not([hidden])", timeout=30_000)
    row = page.inner_text("#sync-runs tbody")
    assert str(run["id"]) in row and "push" in row and "127.0.0.1:9" in row
    page.wait_for_selector("#jobs:not([hidden])", timeout=30_000)
    jobs = page.inner_text("#jobs tbody")
    assert run["id"] in jobs and "sync" in jobs
    reindex_id = next(p["valueString"] for p in reindex.json()["parameter"] if p["name"] == "id")
    assert reindex_id in jobs and "reindex" in jobs
    screenshot(page, "status")
    assert laptop.script_errors() == []
