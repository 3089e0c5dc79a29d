"""Assertions shared by the REST tests."""

from __future__ import annotations

from typing import Any

import httpx

FHIR_JSON = "application/fhir+json"


def assert_outcome(response: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    """The response has ``status`` and an OperationOutcome whose issues mention every word."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"], body
    text = " ".join(
        f"{i.get('diagnostics', '')} {' '.join(i.get('expression', []))}" for i in body["issue"]
    ).lower()
    for word in words:
        assert word.lower() in text, (word, body)
    assert "traceback" not in response.text.lower()
    return dict(body)


def patient(**fields: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", **fields}
