"""Every client mistake is a 4xx OperationOutcome naming the problem
(https://hl7.org/fhir/R4/http.html#ops), on SQLite and PostgreSQL."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import BODY_LIMIT
from tests.api.helpers import assert_outcome, patient

FHIR = {"Content-Type": "application/fhir+json"}


def test_malformed_json_is_400(client: TestClient) -> None:
    response = client.post("/fhir/Patient", content=b'{"resourceType": "Patient",', headers=FHIR)
    assert_outcome(response, 400, "not valid JSON")


def test_body_that_is_not_an_object_is_400(client: TestClient) -> None:
    assert_outcome(client.post("/fhir/Patient", content=b"[1, 2]", headers=FHIR), 400, "object")
    assert_outcome(client.post("/fhir/Patient", content=b"", headers=FHIR), 400, "empty")


def test_resource_type_not_matching_url_is_400(client: TestClient) -> None:
    response = client.post("/fhir/Patient", json={"resourceType": "Observation"})
    assert_outcome(response, 400, "Observation", "Patient", "resourceType")
    response = client.put("/fhir/Patient/a", json={"resourceType": "Observation", "id": "a"})
    assert_outcome(response, 400, "resourceType")


def test_id_mismatch_between_url_and_body_is_400(client: TestClient) -> None:
    response = client.put("/fhir/Patient/a", json=patient(id="b"))
    assert_outcome(response, 400, "'b'", "'a'")
    assert_outcome(client.put("/fhir/Patient/a", json=patient()), 400, "id")


def test_unknown_type_in_url_is_404(client: TestClient) -> None:
    assert_outcome(client.get("/fhir/Unicorn/1"), 404, "Unknown resource type", "Unicorn")
    assert_outcome(client.post("/fhir/Unicorn", json={"resourceType": "Unicorn"}), 404, "Unicorn")
    assert_outcome(client.get("/fhir/HumanName/1"), 404, "Unknown resource type")


def test_unknown_type_in_body_of_transaction_is_400(client: TestClient) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Unicorn"},
                "request": {"method": "POST", "url": "Unicorn"},
            }
        ],
    }
    assert_outcome(client.post("/fhir", json=bundle), 400, "Unicorn")


def test_invalid_resource_is_422_naming_the_element(client: TestClient) -> None:
    # Validation on write (the default, reject) answers 422 with every issue.
    response = client.post("/fhir/Patient", json=patient(gender=["not", "a", "code"]))
    assert_outcome(response, 422, "Patient.gender")
    response = client.post("/fhir/Patient", json=patient(nonsense=True))
    assert_outcome(response, 422, "nonsense")


def test_body_too_large_is_413(client: TestClient) -> None:
    big = patient(name=[{"family": "x" * (BODY_LIMIT + 10)}])
    assert_outcome(client.post("/fhir/Patient", json=big), 413, str(BODY_LIMIT))


def test_body_too_large_without_content_length_is_413(client: TestClient) -> None:
    def chunks():  # streamed: chunked transfer encoding, no Content-Length
        yield b'{"resourceType": "Patient", "name": [{"family": "'
        for _ in range(BODY_LIMIT // 1000 + 5):
            yield b"x" * 1000
        yield b'"}]}'

    response = client.post("/fhir/Patient", content=chunks(), headers=FHIR)
    assert "content-length" not in response.request.headers
    assert_outcome(response, 413, str(BODY_LIMIT))


def test_unsupported_media_type_is_415(client: TestClient) -> None:
    response = client.post(
        "/fhir/Patient", content=b"<Patient/>", headers={"Content-Type": "application/fhir+xml"}
    )
    assert_outcome(response, 415, "application/fhir+xml")
    response = client.post(
        "/fhir/Patient", content=b"resourceType=Patient", headers={"Content-Type": "text/plain"}
    )
    assert_outcome(response, 415, "text/plain")


def test_bad_read_urls_are_4xx_in_the_order_of_the_url(client: TestClient) -> None:
    """read and vread check the type, then the id, then the asked format, then the version."""
    assert_outcome(client.get("/fhir/Patient/bad_id!"), 400, "not a valid FHIR id", "id")
    assert_outcome(client.get("/fhir/Patient/" + "a" * 65), 400, "not a valid FHIR id")
    assert_outcome(client.get("/fhir/Patient/bad_id!/_history/1"), 400, "valid FHIR id")
    assert_outcome(client.get("/fhir/Unicorn/bad_id!"), 404, "Unknown resource type")
    assert_outcome(client.get("/fhir/Unicorn/1/_history/1"), 404, "Unknown resource type")
    assert_outcome(client.get("/fhir/Patient/p1?_format=xml"), 415, "xml")
    assert_outcome(client.get("/fhir/Patient/p1/_history/1?_format=xml"), 415, "xml")
    assert_outcome(client.get("/fhir/Patient/bad_id!?_format=xml"), 400, "valid FHIR id")
    assert_outcome(client.get("/fhir/Patient/p1/_history/x?_format=xml"), 415, "xml")
    assert_outcome(client.get("/fhir/Patient/p1/_history/" + "9" * 19), 404, "version")


def test_version_conflict_is_412(client: TestClient) -> None:
    client.put("/fhir/Patient/v", json=patient(id="v"))
    response = client.put("/fhir/Patient/v", json=patient(id="v"), headers={"If-Match": 'W/"5"'})
    assert_outcome(response, 412, "version 5")
    response = client.put("/fhir/Patient/v", json=patient(id="v"), headers={"If-Match": "soon"})
    assert_outcome(response, 400, "If-Match")


def test_if_match_on_missing_resource_is_412(client: TestClient) -> None:
    response = client.put(
        "/fhir/Patient/nobody", json=patient(id="nobody"), headers={"If-Match": 'W/"1"'}
    )
    assert_outcome(response, 412, "does not exist")
    assert client.get("/fhir/Patient/nobody").status_code == 404


def test_unknown_route_and_wrong_method(client: TestClient) -> None:
    assert_outcome(client.get("/nowhere"), 404, "/nowhere")
    assert_outcome(client.get("/fhir/Patient/a/b/c/d"), 404, "/fhir/Patient/a/b/c/d")
    assert_outcome(client.patch("/fhir/Patient/a/_history/1", content=b"[]"), 405, "PATCH")
    assert_outcome(client.put("/fhir/Patient/a/_history/1", content=b"{}"), 405, "PUT")


def test_bad_query_parameters_are_400(client: TestClient) -> None:
    client.put("/fhir/Patient/q", json=patient(id="q"))
    assert_outcome(client.get("/fhir/Patient/q?_pretty=yes"), 400, "_pretty")
    assert_outcome(client.get("/fhir/_history?_count=-1"), 400, "_count")
    assert_outcome(client.get("/fhir/_history?_since=yesterday"), 400, "_since")
    assert_outcome(client.get("/fhir/_history?_since=2024-01-01T00:00:00"), 400, "timezone")
    assert_outcome(client.get("/fhir/_history?_cursor=abc"), 400, "cursor")


def test_unexpected_error_is_500_outcome_without_details(database_url: str) -> None:
    from fhir_service.api import create_app
    from tests.api.conftest import settings_for

    app = create_app(settings_for(database_url))

    @app.get("/explode")
    def explode() -> None:
        raise RuntimeError("secret patient name Jane Doe")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/explode")
    assert_outcome(response, 500, "Internal server error")
    assert "Jane" not in response.text
    assert "RuntimeError" not in response.text
