"""Hostile input never produces a 500 (https://hl7.org/fhir/R4/http.html#ops)."""

from __future__ import annotations

import random

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import BODY_LIMIT

FHIR = {"Content-Type": "application/fhir+json"}


def test_random_bytes_bodies_are_4xx(client: TestClient) -> None:
    rng = random.Random(20240301)
    for _ in range(40):
        body = rng.randbytes(rng.randint(1, 2000))
        for method, url in (
            ("POST", "/fhir/Patient"),
            ("PUT", "/fhir/Patient/x"),
            ("POST", "/fhir"),
        ):
            response = client.request(method, url, content=body, headers=FHIR)
            assert 400 <= response.status_code < 500, (method, url, response.text)
            assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("depth", [70, 500, 5000, 100_000])
def test_deeply_nested_json_is_400(client: TestClient, depth: int) -> None:
    nested = b'{"a":' * depth + b"1" + b"}" * depth
    body = b'{"resourceType":"Patient","extension":[' + nested + b"]}"
    response = client.post("/fhir/Patient", content=body, headers=FHIR)
    assert response.status_code in (400, 413), response.text
    assert response.json()["resourceType"] == "OperationOutcome"
    arrays = b"[" * depth + b"]" * depth
    response = client.post("/fhir", content=arrays, headers=FHIR)
    assert response.status_code in (400, 413), response.text


def test_deep_but_legal_nesting_inside_a_resource_is_400_not_500(client: TestClient) -> None:
    extension: dict = {"url": "http://example.org/x", "valueString": "leaf"}
    for _ in range(40):
        extension = {"url": "http://example.org/x", "extension": [extension]}
    response = client.post(
        "/fhir/Patient", json={"resourceType": "Patient", "extension": [extension]}
    )
    assert response.status_code in (201, 400), response.text


def test_huge_strings(client: TestClient) -> None:
    under = {"resourceType": "Patient", "name": [{"family": "x" * (BODY_LIMIT // 2)}]}
    assert client.post("/fhir/Patient", json=under).status_code == 201
    over = {"resourceType": "Patient", "name": [{"family": "x" * BODY_LIMIT}]}
    assert client.post("/fhir/Patient", json=over).status_code == 413
    long_id = "a" * 5000
    response = client.get(f"/fhir/Patient/{long_id}")
    assert response.status_code == 400
    response = client.get(f"/fhir/Patient/a/_history/{'9' * 400}")
    assert response.status_code == 404


@pytest.mark.parametrize(
    "raw_id", ["ünïcødé", "患者", "%F0%9F%92%A5", "a%00b", "%ED%A0%80", "..", "a b", "' OR 1=1 --"]
)
def test_unicode_and_odd_ids_are_4xx(client: TestClient, raw_id: str) -> None:
    for method in ("GET", "DELETE"):
        response = client.request(method, f"/fhir/Patient/{raw_id}")
        assert 400 <= response.status_code < 500, (method, raw_id, response.text)
    response = client.put(f"/fhir/Patient/{raw_id}", json={"resourceType": "Patient", "id": raw_id})
    assert 400 <= response.status_code < 500, response.text


@pytest.mark.parametrize(
    "value",
    ["nul\u0000inside", "\ud800 lone surrogate", "emoji 💥 and RTL \u202e text", "\u0001\u0002"],
)
def test_odd_strings_in_bodies_are_accepted_or_4xx(client: TestClient, value: str) -> None:
    body = '{"resourceType":"Patient","name":[{"family":' + _json_string(value) + "}]}"
    response = client.post(
        "/fhir/Patient", content=body.encode("utf-8", "surrogatepass"), headers=FHIR
    )
    assert response.status_code in (201, 400), response.text
    criteria = {"If-None-Exist": ("identifier=" + value.replace("\ud800", "x")).encode()}
    response = client.post("/fhir/Patient", json={"resourceType": "Patient"}, headers=criteria)
    assert response.status_code in (201, 400), response.text
    response = client.delete("/fhir/Patient", params={"identifier": value.replace("\ud800", "x")})
    assert response.status_code in (200, 400), response.text


def _json_string(value: str) -> str:
    out = []
    for char in value:
        if ord(char) < 0x20 or 0xD800 <= ord(char) <= 0xDFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def test_odd_headers_are_4xx(client: TestClient) -> None:
    client.put("/fhir/Patient/h", json={"resourceType": "Patient", "id": "h"})
    cases = [
        {"If-Match": 'W/"' + "9" * 50 + '"'},
        {"If-Match": "\u00e9".encode()},
        {"Prefer": "return=" + "x" * 1000},
        {"Content-Length": "abc"},
    ]
    for headers in cases:
        response = client.put(
            "/fhir/Patient/h",
            content=b'{"resourceType":"Patient","id":"h"}',
            headers={**FHIR, **headers},
        )
        assert 400 <= response.status_code < 500, (headers, response.text)
    for headers in (
        {"If-Modified-Since": "garbage"},
        {"If-None-Match": "\u00e9".encode()},
        {"Accept": ";;;"},
    ):
        response = client.get("/fhir/Patient/h", headers=headers)
        assert response.status_code < 500, (headers, response.text)


def test_hostile_bundles_are_4xx(client: TestClient) -> None:
    cases = [
        {"resourceType": "Bundle", "type": "transaction", "entry": "nope"},
        {"resourceType": "Bundle", "type": "transaction", "entry": [1, None, "x"]},
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [{"request": {"method": "GET"}}],
        },
        {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [
                {
                    "request": {"method": "PUT", "url": "Patient/\u00e9"},
                    "resource": {"resourceType": "Patient", "id": "\u00e9"},
                }
            ],
        },
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "request": {"method": "POST", "url": "Patient"},
                    "resource": {
                        "resourceType": "Patient",
                        "link": [{"other": {"reference": "urn:uuid:missing"}, "type": "seealso"}],
                    },
                }
            ],
        },
        {"resourceType": "Bundle", "type": "collection"},
        {"resourceType": "Patient"},
    ]
    for bundle in cases:
        response = client.post("/fhir", json=bundle)
        assert response.status_code < 500, (bundle, response.text)
        assert response.status_code in (200, 400, 404, 409, 412, 422), response.text
