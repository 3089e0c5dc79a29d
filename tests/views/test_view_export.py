"""$viewdefinition-export over HTTP on both databases
(https://sql-on-fhir.org/ig/latest/OperationDefinition-ViewDefinitionExport.html): the
asynchronous kick-off, status and files of inline and stored views, compared with
$viewdefinition-run's rows for the same views; patient and format; cancellation; bad
kick-offs as 4xx OperationOutcomes; the CapabilityStatement entry; another client's job
is unknown and a patient-scoped token exports its compartment's rows only."""

from __future__ import annotations

import base64
import csv
import io
import json
import time
from typing import Any

import pyarrow.parquet as pq
from fastapi.testclient import TestClient
from httpx import Response

from tests.security.conftest import (  # noqa: F401  (fixtures)
    ADMIN,
    Smart,
    World,
    make_smart,
    smart,
    world,
)
from tests.views.test_http import (  # noqa: F401  (fixtures)
    OBS_VIEW,
    PATIENT_VIEW,
    RUN,
    client,
    params,
    seeded,
)

EXPORT = "/fhir/ViewDefinition/$viewdefinition-export"
ASYNC = {"Prefer": "respond-async"}


def _kick_off(views: list[dict[str, Any]], **values: Any) -> dict[str, Any]:
    """A Parameters body: one ``view`` per item (``name``, ``resource`` or ``reference``)."""
    parameter: list[dict[str, Any]] = []
    for item in views:
        parts: list[dict[str, Any]] = []
        if "name" in item:
            parts.append({"name": "name", "valueString": item["name"]})
        if "resource" in item:
            parts.append({"name": "viewResource", "resource": item["resource"]})
        if "reference" in item:
            parts.append(
                {"name": "viewReference", "valueReference": {"reference": item["reference"]}}
            )
        parameter.append({"name": "view", "part": parts})
    parameter.extend(params(**values)["parameter"])
    return {"resourceType": "Parameters", "parameter": parameter}


def _wait(http: TestClient, location: str, headers: dict[str, str] | None = None) -> Response:
    deadline = time.monotonic() + 60
    while True:
        status = http.get(location, headers=headers)
        assert status.status_code in (200, 202), status.text
        body = status.json()
        state = _param(body, "status")
        if status.status_code == 200 or state == "failed":
            return status
        assert state in ("accepted", "in-progress")
        assert status.headers["Retry-After"]
        assert time.monotonic() < deadline, body
        time.sleep(0.2)


def _param(body: dict[str, Any], name: str) -> Any:
    for param in body["parameter"]:
        if param["name"] == name:
            return next(v for k, v in param.items() if k.startswith("value"))
    return None


def _outputs(body: dict[str, Any]) -> dict[str, str]:
    """name -> location of each ``output``."""
    out = {}
    for param in body["parameter"]:
        if param["name"] == "output":
            parts = {p["name"]: p.get("valueString") or p.get("valueUri") for p in param["part"]}
            out[parts["name"]] = parts["location"]
    return out


def _rows(text: str) -> list[dict[str, str]]:
    return sorted((dict(r) for r in csv.DictReader(io.StringIO(text))), key=json.dumps)


def _store_view(http: TestClient, view: dict[str, Any]) -> str:
    binary = {
        "resourceType": "Binary",
        "contentType": "application/json",
        "data": base64.b64encode(json.dumps(view).encode()).decode(),
    }
    answer = http.post("/fhir/Binary", json=binary)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def test_export_of_inline_and_stored_views_matches_run(
    client: TestClient,  # noqa: F811
    seeded: dict[str, str],  # noqa: F811
) -> None:
    stored = _store_view(client, PATIENT_VIEW)
    body = _kick_off(
        [{"name": "observations", "resource": OBS_VIEW}, {"reference": f"ViewDefinition/{stored}"}],
        _format="csv",
        clientTrackingId="monthly-1",
    )
    kicked = client.post(EXPORT, json=body, headers=ASYNC)
    assert kicked.status_code == 202, kicked.text
    location = kicked.headers["Content-Location"]
    assert _param(kicked.json(), "status") == "accepted"
    assert _param(kicked.json(), "location").endswith(location.split("/fhir")[-1])
    assert _param(kicked.json(), "clientTrackingId") == "monthly-1"

    done = _wait(client, location)
    assert done.status_code == 200, done.text
    result = done.json()
    assert _param(result, "status") == "completed"
    assert _param(result, "_format") == "csv"
    assert _param(result, "exportDuration") >= 0
    outputs = _outputs(result)
    assert set(outputs) == {"observations", "patient_names"}  # the view's own name
    for name, view in (("observations", OBS_VIEW), ("patient_names", PATIENT_VIEW)):
        file = client.get(outputs[name])
        assert file.status_code == 200
        assert file.headers["content-type"].startswith("text/csv")
        run = client.post(RUN, json=params(view, _format="csv"))
        assert run.status_code == 200
        assert _rows(file.text) == _rows(run.text)
        assert _rows(file.text), f"{name}: no rows"


def test_patient_and_parquet(
    client: TestClient,  # noqa: F811
    seeded: dict[str, str],  # noqa: F811
) -> None:
    body = _kick_off(
        [{"name": "obs", "resource": OBS_VIEW}],
        _format="parquet",
        patient=f"Patient/{seeded['ada']}",
    )
    kicked = client.post(EXPORT, json=body, headers=ASYNC)
    assert kicked.status_code == 202, kicked.text
    done = _wait(client, kicked.headers["Content-Location"])
    file = client.get(_outputs(done.json())["obs"])
    table = pq.read_table(io.BytesIO(file.content))
    assert sorted(table.column("id").to_pylist()) == sorted([seeded["o1"], seeded["o2"]])
    assert set(table.column("patient").to_pylist()) == {seeded["ada"]}


def test_cancel_removes_the_job(
    client: TestClient,  # noqa: F811
    seeded: dict[str, str],  # noqa: F811
) -> None:
    kicked = client.post(EXPORT, json=_kick_off([{"resource": OBS_VIEW}]), headers=ASYNC)
    location = kicked.headers["Content-Location"]
    cancelled = client.delete(location)
    assert cancelled.status_code == 202
    assert cancelled.json()["resourceType"] == "OperationOutcome"
    gone = client.get(location)
    assert gone.status_code == 404
    assert gone.json()["resourceType"] == "OperationOutcome"


def test_bad_kick_offs_are_4xx(client: TestClient) -> None:  # noqa: F811
    good = _kick_off([{"resource": OBS_VIEW}])
    cases: list[tuple[dict[str, Any] | None, dict[str, str], int, str]] = [
        (good, {}, 400, "respond-async"),
        (None, ASYNC, 400, "Parameters"),
        (_kick_off([]), ASYNC, 400, "at least one view"),
        (_kick_off([{"resource": {"resource": "Patient"}}]), ASYNC, 422, "select"),
        (_kick_off([{"reference": "ViewDefinition/none"}]), ASYNC, 404, ""),
        (_kick_off([{"resource": OBS_VIEW}], group="Group/g1"), ASYNC, 400, "group"),
        (
            _kick_off([{"name": "a", "resource": OBS_VIEW}, {"name": "a", "resource": OBS_VIEW}]),
            ASYNC,
            400,
            "own name",
        ),
        (_kick_off([{"name": "../x", "resource": OBS_VIEW}]), ASYNC, 400, "view name"),
        (_kick_off([{"resource": OBS_VIEW}], _format="xlsx"), ASYNC, 400, "_format"),
    ]
    two_patients = _kick_off([{"resource": OBS_VIEW}])
    two_patients["parameter"] += [
        {"name": "patient", "valueReference": {"reference": "Patient/a"}},
        {"name": "patient", "valueReference": {"reference": "Patient/b"}},
    ]
    cases.append((two_patients, ASYNC, 400, "one patient"))
    for body, headers, status, words in cases:
        if body is None:
            answer = client.post(EXPORT, content=b"", headers=headers)
        else:
            answer = client.post(EXPORT, json=body, headers=headers)
        assert answer.status_code == status, (body, answer.text)
        outcome = answer.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert words in json.dumps(outcome)
    assert client.get("/fhir/$viewdefinition-export-status/unknown").status_code == 404


def test_capability_statement_declares_the_operation(client: TestClient) -> None:  # noqa: F811
    operations = client.get("/fhir/metadata").json()["rest"][0].get("operation", [])
    assert {
        "name": "viewdefinition-export",
        "definition": "http://sql-on-fhir.org/OperationDefinition/$viewdefinition-export",
    } in operations


def test_jobs_belong_to_their_client_and_patient_scope(smart: Smart, world: World) -> None:  # noqa: F811
    view = {
        "resourceType": "ViewDefinition",
        "resource": "Observation",
        "select": [{"column": [{"name": "id", "path": "getResourceKey()"}]}],
    }
    body = _kick_off([{"name": "obs", "resource": view}], _format="ndjson")
    admin_headers = {**smart.headers(ADMIN), **ASYNC}
    kicked = smart.client.post(EXPORT, json=body, headers=admin_headers)
    assert kicked.status_code == 202, kicked.text
    location = kicked.headers["Content-Location"]
    as_a = smart.headers("patient/*.rs", world.a)
    assert smart.client.get(location, headers=as_a).status_code == 404
    narrower = smart.headers("system/Patient.rs")  # same client, no longer Observation
    assert smart.client.get(location, headers=narrower).status_code == 403
    done = _wait(smart.client, location, smart.headers(ADMIN))
    url = _outputs(done.json())["obs"]
    assert smart.client.get(url, headers=as_a).status_code == 404
    everyone = smart.client.get(url, headers=smart.headers(ADMIN)).text.splitlines()
    assert {json.loads(line)["id"] for line in everyone} == {world.obs_a, world.obs_b}

    own = smart.client.post(EXPORT, json=body, headers={**as_a, **ASYNC})
    assert own.status_code == 202, own.text
    mine = _wait(smart.client, own.headers["Content-Location"], as_a)
    lines = smart.client.get(_outputs(mine.json())["obs"], headers=as_a).text.splitlines()
    assert [json.loads(line)["id"] for line in lines] == [world.obs_a]
