"""Helpers of the search tests."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient


def search(client: TestClient, url: str, **headers: str) -> dict[str, Any]:
    """GET a search URL; assert a searchset Bundle comes back."""
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    bundle: dict[str, Any] = response.json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "searchset"
    return bundle


def ids(bundle: dict[str, Any], mode: str = "match") -> set[str]:
    """Ids of the entries with search.mode ``mode``."""
    return {e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode}


def link(bundle: dict[str, Any], relation: str) -> str | None:
    for item in bundle.get("link", []):
        if item["relation"] == relation:
            url: str = item["url"]
            return url.replace("http://testserver", "")
    return None


VITAL_SIGNS: dict[str, Any] = {
    "category": [
        {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "vital-signs",
                }
            ]
        }
    ],
    "subject": {"reference": "Patient/x"},
    "effectiveDateTime": "2021-05-01",
}
"""What the R4 vital signs profiles require of every vital-sign Observation besides its
code and value (https://hl7.org/fhir/R4/observation-vitalsigns.html); validation on write
checks it."""
