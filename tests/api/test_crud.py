"""Read, vread, create, update, patch, delete and their conditional forms
(https://hl7.org/fhir/R4/http.html), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime, parsedate_to_datetime

from fastapi.testclient import TestClient

from tests.api.helpers import FHIR_JSON, assert_outcome, patient

IDENT = {"system": "http://example.org/mrn", "value": "12345"}


def create(client: TestClient, body: dict, **headers: str) -> dict:
    response = client.post(f"/fhir/{body['resourceType']}", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_create_assigns_id_and_answers_201_with_location_etag_last_modified(
    client: TestClient,
) -> None:
    response = client.post("/fhir/Patient", json=patient(id="ignored", gender="female"))
    assert response.status_code == 201
    body = response.json()
    assert body["id"] != "ignored"
    assert body["meta"]["versionId"] == "1"
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["location"] == (
        f"http://testserver/fhir/Patient/{body['id']}/_history/1"
    )
    assert response.headers["content-type"].startswith(FHIR_JSON)
    modified = parsedate_to_datetime(response.headers["last-modified"])
    assert modified.tzinfo is not None


def test_read_and_vread(client: TestClient) -> None:
    created = create(client, patient(gender="male"))
    pid = created["id"]
    read = client.get(f"/fhir/Patient/{pid}")
    assert read.status_code == 200
    assert read.json()["gender"] == "male"
    assert read.headers["etag"] == 'W/"1"'
    client.put(f"/fhir/Patient/{pid}", json=patient(id=pid, gender="female"))
    assert client.get(f"/fhir/Patient/{pid}/_history/1").json()["gender"] == "male"
    v2 = client.get(f"/fhir/Patient/{pid}/_history/2")
    assert v2.json()["gender"] == "female"
    assert v2.headers["etag"] == 'W/"2"'
    assert_outcome(client.get(f"/fhir/Patient/{pid}/_history/3"), 404, "_history/3")
    assert_outcome(client.get(f"/fhir/Patient/{pid}/_history/x"), 404, "version")


def test_read_unknown_id_is_404(client: TestClient) -> None:
    assert_outcome(client.get("/fhir/Patient/does-not-exist"), 404, "Patient/does-not-exist")


def test_update_new_version_and_create_on_update(client: TestClient) -> None:
    response = client.put("/fhir/Patient/client-id-1", json=patient(id="client-id-1"))
    assert response.status_code == 201
    assert response.headers["location"].endswith("/fhir/Patient/client-id-1/_history/1")
    again = client.put("/fhir/Patient/client-id-1", json=patient(id="client-id-1", active=True))
    assert again.status_code == 200
    assert again.headers["etag"] == 'W/"2"'
    assert again.json()["active"] is True


def test_stale_if_match_is_412_and_changes_nothing(client: TestClient) -> None:
    pid = create(client, patient(gender="male"))["id"]
    client.put(f"/fhir/Patient/{pid}", json=patient(id=pid, gender="female"))
    stale = client.put(
        f"/fhir/Patient/{pid}", json=patient(id=pid, gender="other"), headers={"If-Match": 'W/"1"'}
    )
    assert_outcome(stale, 412, "If-Match")
    current = client.get(f"/fhir/Patient/{pid}")
    assert current.json()["gender"] == "female"
    assert current.headers["etag"] == 'W/"2"'
    fresh = client.put(
        f"/fhir/Patient/{pid}", json=patient(id=pid, gender="other"), headers={"If-Match": 'W/"2"'}
    )
    assert fresh.status_code == 200
    assert fresh.headers["etag"] == 'W/"3"'


def test_if_none_match_and_if_modified_since_give_304(client: TestClient) -> None:
    created = client.post("/fhir/Patient", json=patient())
    pid = created.json()["id"]
    assert client.get(f"/fhir/Patient/{pid}", headers={"If-None-Match": 'W/"1"'}).status_code == 304
    assert client.get(f"/fhir/Patient/{pid}", headers={"If-None-Match": 'W/"7"'}).status_code == 200
    modified = parsedate_to_datetime(created.headers["last-modified"])
    later = format_datetime(modified + timedelta(hours=1), usegmt=True)
    earlier = format_datetime(modified - timedelta(hours=1), usegmt=True)
    assert (
        client.get(f"/fhir/Patient/{pid}", headers={"If-Modified-Since": later}).status_code == 304
    )
    response = client.get(f"/fhir/Patient/{pid}", headers={"If-Modified-Since": earlier})
    assert response.status_code == 200


def test_conditional_create(client: TestClient) -> None:
    headers = {"If-None-Exist": "identifier=http://example.org/mrn|12345"}
    first = client.post("/fhir/Patient", json=patient(identifier=[IDENT]), headers=headers)
    assert first.status_code == 201
    second = client.post("/fhir/Patient", json=patient(identifier=[IDENT]), headers=headers)
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    client.put("/fhir/Patient/dup", json=patient(id="dup", identifier=[IDENT]))
    several = client.post("/fhir/Patient", json=patient(identifier=[IDENT]), headers=headers)
    assert_outcome(several, 412, "more than one")


def test_conditional_update(client: TestClient) -> None:
    url = "/fhir/Patient?identifier=http://example.org/mrn|777"
    ident = {"system": "http://example.org/mrn", "value": "777"}
    created = client.put(url, json=patient(identifier=[ident], gender="male"))
    assert created.status_code == 201
    pid = created.json()["id"]
    updated = client.put(url, json=patient(identifier=[ident], gender="female"))
    assert updated.status_code == 200
    assert updated.json()["id"] == pid
    assert updated.headers["etag"] == 'W/"2"'
    client.put("/fhir/Patient/other", json=patient(id="other", identifier=[ident]))
    assert_outcome(client.put(url, json=patient(identifier=[ident])), 412, "more than one")
    assert_outcome(client.put("/fhir/Patient", json=patient()), 400, "criteria")


def test_patch_with_json_patch(client: TestClient) -> None:
    pid = create(client, patient(gender="male"))["id"]
    ops = b'[{"op": "replace", "path": "/gender", "value": "female"}]'
    response = client.patch(
        f"/fhir/Patient/{pid}",
        content=ops,
        headers={"Content-Type": "application/json-patch+json", "If-Match": 'W/"1"'},
    )
    assert response.status_code == 200
    assert response.json()["gender"] == "female"
    assert response.headers["etag"] == 'W/"2"'
    stale = client.patch(
        f"/fhir/Patient/{pid}",
        content=ops,
        headers={"Content-Type": "application/json-patch+json", "If-Match": 'W/"1"'},
    )
    assert_outcome(stale, 412, "If-Match")
    bad = client.patch(
        f"/fhir/Patient/{pid}",
        content=b'[{"op": "remove", "path": "/nothing/here"}]',
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert_outcome(bad, 422, "patch")
    wrong_type = client.patch(
        f"/fhir/Patient/{pid}", content=ops, headers={"Content-Type": "text/plain"}
    )
    assert_outcome(wrong_type, 415, "application/json-patch+json")
    # FHIR JSON carries a FHIRPath Patch, which is a Parameters resource, not an array.
    as_fhir_json = client.patch(
        f"/fhir/Patient/{pid}", content=ops, headers={"Content-Type": "application/fhir+json"}
    )
    assert_outcome(as_fhir_json, 400, "Parameters")


def test_delete_then_read_is_410(client: TestClient) -> None:
    pid = create(client, patient())["id"]
    deleted = client.delete(f"/fhir/Patient/{pid}")
    assert_outcome(deleted, 200, f"Patient/{pid}")
    assert_outcome(client.get(f"/fhir/Patient/{pid}"), 410, "deleted")
    again = client.delete(f"/fhir/Patient/{pid}", headers={"Prefer": "return=minimal"})
    assert again.status_code == 204
    assert again.content == b""


def test_delete_with_stale_if_match_is_412(client: TestClient) -> None:
    pid = create(client, patient())["id"]
    response = client.delete(f"/fhir/Patient/{pid}", headers={"If-Match": 'W/"9"'})
    assert_outcome(response, 412, "If-Match")
    assert client.get(f"/fhir/Patient/{pid}").status_code == 200


def test_conditional_delete(client: TestClient) -> None:
    ident = {"system": "http://example.org/mrn", "value": "del"}
    pid = create(client, patient(identifier=[ident]))["id"]
    response = client.delete("/fhir/Patient?identifier=http://example.org/mrn|del")
    assert_outcome(response, 200, f"Patient/{pid}")
    assert client.get(f"/fhir/Patient/{pid}").status_code == 410
    create(client, patient(identifier=[ident]))
    create(client, patient(identifier=[ident]))
    several = client.delete("/fhir/Patient?identifier=http://example.org/mrn|del")
    assert_outcome(several, 412, "more than one")
    assert_outcome(client.delete("/fhir/Patient"), 400, "criteria")


def test_conditional_patch(client: TestClient) -> None:
    """PATCH /Type?criteria patches the one match, with JSON Patch or FHIRPath Patch;
    no match is 404, several are 412, and neither writes anything."""
    ident = {"system": "http://example.org/mrn", "value": "cpatch"}
    url = "/fhir/Patient?identifier=http://example.org/mrn|cpatch"
    pid = create(client, patient(identifier=[ident], gender="male"))["id"]
    json_patch = [{"op": "replace", "path": "/gender", "value": "female"}]
    patched = client.patch(
        url, json=json_patch, headers={"Content-Type": "application/json-patch+json"}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["id"] == pid and patched.json()["gender"] == "female"
    fhirpath_patch = {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "operation",
                "part": [
                    {"name": "type", "valueCode": "add"},
                    {"name": "path", "valueString": "Patient"},
                    {"name": "name", "valueString": "birthDate"},
                    {"name": "value", "valueDate": "1960-05-04"},
                ],
            }
        ],
    }
    stale = client.patch(
        url, json=fhirpath_patch, headers={"Content-Type": FHIR_JSON, "If-Match": 'W/"1"'}
    )
    assert_outcome(stale, 412, "If-Match")
    added = client.patch(url, json=fhirpath_patch, headers={"Content-Type": FHIR_JSON})
    assert added.status_code == 200, added.text
    current = client.get(f"/fhir/Patient/{pid}").json()
    assert (current["meta"]["versionId"], current["birthDate"]) == ("3", "1960-05-04")

    none = client.patch(
        "/fhir/Patient?identifier=http://example.org/mrn|nobody",
        json=json_patch,
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert_outcome(none, 404, "nobody")
    create(client, patient(identifier=[ident]))
    several = client.patch(
        url, json=json_patch, headers={"Content-Type": "application/json-patch+json"}
    )
    assert_outcome(several, 412, "more than one")
    assert client.get(f"/fhir/Patient/{pid}").json()["meta"]["versionId"] == "3"
    no_criteria = client.patch(
        "/fhir/Patient", json=json_patch, headers={"Content-Type": "application/json-patch+json"}
    )
    assert_outcome(no_criteria, 400, "criteria")


def test_prefer_return(client: TestClient) -> None:
    minimal = client.post("/fhir/Patient", json=patient(), headers={"Prefer": "return=minimal"})
    assert minimal.status_code == 201
    assert minimal.content == b""
    assert minimal.headers["location"]
    outcome = client.post(
        "/fhir/Patient", json=patient(), headers={"Prefer": "return=OperationOutcome"}
    )
    assert outcome.status_code == 201
    assert outcome.json()["resourceType"] == "OperationOutcome"
    assert outcome.json()["issue"][0]["severity"] == "information"
    full = client.post("/fhir/Patient", json=patient(), headers={"Prefer": "return=representation"})
    assert full.json()["resourceType"] == "Patient"
    bad = client.post("/fhir/Patient", json=patient(), headers={"Prefer": "return=everything"})
    assert_outcome(bad, 400, "Prefer")


def test_format_accept_and_pretty(client: TestClient) -> None:
    pid = create(client, patient())["id"]
    plain = client.get(f"/fhir/Patient/{pid}", headers={"Accept": "application/json"})
    assert plain.headers.get_list("content-type") == ["application/json; charset=utf-8"]
    by_param = client.get(f"/fhir/Patient/{pid}?_format=json")
    assert by_param.headers.get_list("content-type") == [f"{FHIR_JSON}; charset=utf-8"]
    etag = by_param.headers["etag"]
    unchanged = client.get(f"/fhir/Patient/{pid}", headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.content == b""
    assert "content-type" not in unchanged.headers
    overridden = client.get(
        f"/fhir/Patient/{pid}?_format=application/json", headers={"Accept": FHIR_JSON}
    )
    assert overridden.headers["content-type"].startswith("application/json")
    pretty = client.get(f"/fhir/Patient/{pid}?_pretty=true")
    assert "\n  " in pretty.text
    assert "\n" not in client.get(f"/fhir/Patient/{pid}").text
    assert_outcome(client.get(f"/fhir/Patient/{pid}?_format=xml"), 415, "_format")
    xml_only = client.get(f"/fhir/Patient/{pid}", headers={"Accept": "application/fhir+xml"})
    assert_outcome(xml_only, 415, "Accept")


def test_summary_and_elements_on_read(client: TestClient) -> None:
    body = patient(
        text={"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">P</div>'},
        gender="female",
        maritalStatus={"text": "married"},
        name=[{"family": "Doe"}],
    )
    pid = create(client, body)["id"]
    summary = client.get(f"/fhir/Patient/{pid}?_summary=true").json()
    # Patient.maritalStatus and Patient.text are not summary elements in R4; name and gender are.
    assert "maritalStatus" not in summary
    assert "text" not in summary
    assert summary["name"] == [{"family": "Doe"}]
    assert {"code": "SUBSETTED"}.items() <= summary["meta"]["tag"][0].items()
    text = client.get(f"/fhir/Patient/{pid}?_summary=text").json()
    assert set(text) == {"resourceType", "id", "meta", "text"}
    data = client.get(f"/fhir/Patient/{pid}?_summary=data").json()
    assert "text" not in data
    assert data["maritalStatus"] == {"text": "married"}
    elements = client.get(f"/fhir/Patient/{pid}?_elements=gender").json()
    assert set(elements) == {"resourceType", "id", "meta", "gender"}
    assert_outcome(client.get(f"/fhir/Patient/{pid}?_summary=maybe"), 400, "_summary")
    assert_outcome(client.get(f"/fhir/Patient/{pid}?_elements=nosuch"), 400, "nosuch")
