"""Bulk Data $export under type-limited system scopes: the kick-off checks every requested
type wherever it is given (query string or Parameters body), and status and downloads
re-check the scopes of the token that fetches them
(https://hl7.org/fhir/uv/bulkdata/STU2/export.html,
https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
import pytest

from tests.security.conftest import V2_PATIENT, Smart, World
from tests.security.leaks import assert_no_leak

ASYNC = {"Prefer": "respond-async"}
NARROW = ["system/Observation.rs", "system/Observation.read"]


def _token(smart: Smart, scope: str, client: str, patient: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {smart.token(scope, patient, sub=client)}"}


# a check that reads only the query string is passed by adding an allowed type to it
TRICK = "?_type=Observation"


def _manifest(smart: Smart, status_url: str, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    if smart.client.get(status_url, headers=headers).status_code == 403:
        status_url += TRICK
    while True:
        response = smart.client.get(status_url, headers=headers)
        if response.status_code == 200:
            manifest: dict[str, Any] = response.json()
            return manifest
        assert response.status_code == 202, response.text
        assert time.monotonic() < deadline, "export did not finish"
        time.sleep(0.05)


def _types_in(response: httpx.Response) -> set[str]:
    return {orjson.loads(line)["resourceType"] for line in response.content.splitlines() if line}


def _parameters(**values: str) -> dict[str, Any]:
    return {
        "resourceType": "Parameters",
        "parameter": [{"name": k, "valueString": v} for k, v in values.items()],
    }


@pytest.mark.parametrize("scope", NARROW)
@pytest.mark.parametrize("query", ["", "?_type=Observation"])
def test_posted_type_is_checked_against_scopes(
    smart: Smart, world: World, scope: str, query: str
) -> None:
    """POST $export with ``_type=Patient`` in its Parameters body, by a client that may read
    only Observations: 403, or an export that holds no Patient (export.html#query-parameters)."""
    headers = {**_token(smart, scope, "narrow-exporter"), **ASYNC}
    response = smart.client.post(
        f"/fhir/$export{query}",
        json=_parameters(_type="Patient"),
        headers={**headers, "Content-Type": "application/fhir+json"},
    )
    assert response.status_code in (202, 403), response.text
    if response.status_code == 403:
        return
    status_url = response.headers["content-location"]
    manifest = _manifest(smart, status_url, headers)
    assert {item["type"] for item in manifest["output"]} <= {"Observation"}, manifest
    job = status_url.rsplit("/", 1)[-1]
    for suffix in ("", TRICK):
        guessed = smart.client.get(
            f"/fhir/$export-file/{job}/Patient-1.ndjson{suffix}", headers=headers
        )
        assert guessed.status_code in (403, 404), (suffix, guessed.status_code, guessed.text[:300])
    for item in manifest["output"]:
        for suffix in ("", TRICK):
            file = smart.client.get(item["url"] + suffix, headers=headers)
            if file.status_code == 200:
                assert _types_in(file) <= {"Observation"}


def test_downloads_recheck_the_scopes_of_who_fetches(smart: Smart, world: World) -> None:
    """Status and files of an export made under ``system/*.rs`` fetched with a token of the
    same client that may read only Observations (or only patient A's compartment): refused
    (403/404), the manifest (Patient count) and the Patient file alike; another client
    gets 404 for everything."""
    wide = {**_token(smart, "system/*.rs", "exporter"), **ASYNC}
    kicked = smart.client.get("/fhir/$export?_type=Patient,Observation", headers=wide)
    assert kicked.status_code == 202, kicked.text
    status_url = kicked.headers["content-location"]
    manifest = _manifest(smart, status_url, wide)
    files = {item["type"]: item["url"] for item in manifest["output"]}
    assert set(files) == {"Patient", "Observation"}
    assert _types_in(smart.client.get(files["Patient"], headers=wide)) == {"Patient"}
    problems = []
    for label, headers in (
        ("system/Observation.rs", _token(smart, "system/Observation.rs", "exporter")),
        ("system/Observation.read", _token(smart, "system/Observation.read", "exporter")),
        ("patient scope of A", _token(smart, V2_PATIENT, "exporter", world.a)),
    ):
        for suffix in ("", TRICK):
            status = smart.client.get(status_url + suffix, headers=headers)
            if status.status_code not in (403, 404):
                problems.append(f"{label}: status{suffix} answers {status.status_code}")
            patients = smart.client.get(files["Patient"] + suffix, headers=headers)
            if patients.status_code not in (403, 404):
                problems.append(f"{label}: Patient file{suffix} answers {patients.status_code}")
            else:
                assert_no_leak(patients, world)
    other = _token(smart, "system/*.rs", "someone-else")
    for url in (status_url, *files.values()):
        assert smart.client.get(url, headers=other).status_code == 404
    assert not problems, "\n".join(problems)
