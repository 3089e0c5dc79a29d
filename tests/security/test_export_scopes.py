"""Bulk Data ``$export`` under SMART scopes
(https://hl7.org/fhir/uv/bulkdata/STU2/export.html,
https://hl7.org/fhir/smart-app-launch/backend-services.html#scopes): the kick-off is
checked on the parameters the job runs with, query string and POST body alike; without
``_type`` the export holds only the types the client's ``system/`` read scopes cover;
status, files and cancel belong to the job's client and need its scopes still."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from httpx import Response

from tests.api.helpers import assert_outcome
from tests.security.conftest import ADMIN, Smart, World, _create

ASYNC = {"Prefer": "respond-async"}
OBSERVATIONS = "system/Observation.rs"
OWNER = "test-client"
ORIGIN = "http://testserver"


@pytest.fixture
def smart(make_smart: Any, tmp_path: Path) -> Smart:
    """The smart-mode app of the conftest, with an export directory of this test."""
    result: Smart = make_smart(export_dir=tmp_path / "exports")
    return result


def auth(smart: Smart, scope: str, client: str = OWNER) -> dict[str, str]:
    return {"Authorization": f"Bearer {smart.token(scope, sub=client)}", **ASYNC}


def parameters(*pairs: tuple[str, Any]) -> dict[str, Any]:
    items = [
        {"name": n, "valueReference" if isinstance(v, dict) else "valueString": v} for n, v in pairs
    ]
    return {"resourceType": "Parameters", "parameter": items}


def kick_off(smart: Smart, path: str, scope: str, **kwargs: Any) -> str:
    method = kwargs.pop("method", "GET")
    response = smart.client.request(method, path, headers=auth(smart, scope), **kwargs)
    assert response.status_code == 202, response.text
    return str(response.headers["content-location"]).removeprefix(ORIGIN)


def manifest(client: TestClient, status: str, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        response = client.get(status, headers=headers)
        if response.status_code == 200:
            result: dict[str, Any] = response.json()
            return result
        assert response.status_code == 202, response.text
        assert time.monotonic() < deadline, "export did not finish"
        time.sleep(0.05)


def exported(smart: Smart, status: str, scope: str) -> dict[str, set[str]]:
    """Resource ids by type, from every file of the finished job."""
    headers = auth(smart, scope)
    found: dict[str, set[str]] = {}
    for item in manifest(smart.client, status, headers)["output"]:
        response = smart.client.get(item["url"].removeprefix(ORIGIN), headers=headers)
        assert response.status_code == 200, response.text
        for line in response.content.splitlines():
            resource = orjson.loads(line)
            found.setdefault(resource["resourceType"], set()).add(resource["id"])
    return found


def test_types_named_in_a_post_body_are_checked_like_the_query(smart: Smart, world: World) -> None:
    group = _create(
        smart,
        {
            "resourceType": "Group",
            "type": "person",
            "actual": True,
            "member": [{"entity": {"reference": f"Patient/{world.a}"}}],
        },
    )
    scope = f"{OBSERVATIONS} system/Group.rs"
    for path in ("/fhir/$export", "/fhir/Patient/$export", f"/fhir/Group/{group}/$export"):
        query = smart.client.get(f"{path}?_type=Patient", headers=auth(smart, scope))
        assert_outcome(query, 403, "$export of Patient")
        for pairs in (
            [("_type", "Patient")],
            [("_type", "Observation,Patient")],
            [("_typeFilter", "Patient?name=Alpha")],
        ):
            body = smart.client.post(path, json=parameters(*pairs), headers=auth(smart, scope))
            assert_outcome(body, 403, "$export of Patient")
    assert_outcome(
        smart.client.get("/fhir/$export", headers=auth(smart, "system/Patient.write")), 403
    )


def test_without_type_an_export_holds_only_the_covered_types(smart: Smart, world: World) -> None:
    everything = kick_off(smart, "/fhir/$export", OBSERVATIONS, method="POST")
    assert exported(smart, everything, OBSERVATIONS) == {"Observation": {world.obs_a, world.obs_b}}
    body = parameters(("patient", {"reference": f"Patient/{world.a}"}))
    of_a = kick_off(smart, "/fhir/Patient/$export", OBSERVATIONS, method="POST", json=body)
    assert exported(smart, of_a, OBSERVATIONS) == {"Observation": {world.obs_a}}
    admin = kick_off(smart, "/fhir/Patient/$export", ADMIN)
    assert set(exported(smart, admin, ADMIN)) == {"Patient", "Observation", "Encounter"}


def _refused_as_unknown(response: Response, job: str) -> None:
    body = assert_outcome(response, 404, job)
    assert "Observation" not in str(body)


def test_jobs_answer_only_their_client_and_its_scopes(smart: Smart, world: World) -> None:
    status = kick_off(smart, "/fhir/$export?_type=Observation", OBSERVATIONS)
    job = status.rsplit("/", 1)[1]
    files = manifest(smart.client, status, auth(smart, OBSERVATIONS))["output"]
    assert [f["type"] for f in files] == ["Observation"]
    file = files[0]["url"].removeprefix(ORIGIN)

    other = auth(smart, "system/*.cruds", client="other-client")
    _refused_as_unknown(smart.client.get(status, headers=other), job)
    _refused_as_unknown(smart.client.get(file, headers=other), job)
    _refused_as_unknown(smart.client.delete(status, headers=other), job)

    narrowed = auth(smart, "system/Patient.rs")
    for url in (status, file):
        body = assert_outcome(smart.client.get(url, headers=narrowed), 403, "scopes")
        assert "Observation" not in str(body)

    owner = auth(smart, OBSERVATIONS)
    assert smart.client.get(file, headers=owner).status_code == 200
    assert smart.client.delete(status, headers=owner).status_code == 202
    assert_outcome(smart.client.get(status, headers=owner), 404, job)


def test_deleted_resource_files_need_the_scopes_of_every_type_of_the_job(
    smart: Smart, world: World
) -> None:
    since = smart.client.get(f"/fhir/Observation/{world.obs_b}", headers=auth(smart, ADMIN)).json()[
        "meta"
    ]["lastUpdated"]
    time.sleep(0.01)
    deleted = smart.client.delete(f"/fhir/Observation/{world.obs_b}", headers=auth(smart, ADMIN))
    assert deleted.status_code in (200, 204), deleted.text
    status = kick_off(smart, "/fhir/$export", OBSERVATIONS, params={"_since": since})
    done = manifest(smart.client, status, auth(smart, OBSERVATIONS))
    assert [f["type"] for f in done["deleted"]] == ["Bundle"]
    url = done["deleted"][0]["url"].removeprefix(ORIGIN)
    listed = smart.client.get(url, headers=auth(smart, OBSERVATIONS))
    assert listed.status_code == 200, listed.text
    assert f"Observation/{world.obs_b}" in listed.text
    assert_outcome(smart.client.get(url, headers=auth(smart, "system/Patient.rs")), 403)
