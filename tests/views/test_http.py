"""$viewdefinition-run over HTTP on both databases
(https://sql-on-fhir.org/ig/latest/OperationDefinition-ViewDefinitionRun.html): inline and
stored views, the four formats, _limit, patient, header, invalid views as 400
OperationOutcomes, the CapabilityStatement entry, and a patient-scoped token that sees
only its compartment's rows."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from fhir_service.api import create_app
from fhir_service.settings import Settings
from tests.security.conftest import (  # noqa: F401  (fixtures)
    ADMIN,
    Smart,
    World,
    make_smart,
    smart,
    world,
)

RUN = "/fhir/ViewDefinition/$viewdefinition-run"
PATIENT_VIEW = {
    "resourceType": "ViewDefinition",
    "name": "patient_names",
    "resource": "Patient",
    "status": "active",
    "select": [
        {"column": [{"name": "id", "path": "getResourceKey()"}]},
        {"forEachOrNull": "name", "column": [{"name": "family", "path": "family"}]},
    ],
}
OBS_VIEW = {
    "resourceType": "ViewDefinition",
    "resource": "Observation",
    "status": "active",
    "select": [
        {
            "column": [
                {"name": "id", "path": "getResourceKey()"},
                {"name": "patient", "path": "subject.getReferenceKey(Patient)"},
                {"name": "code", "path": "code.coding.code.first()"},
                {"name": "value", "path": "value.ofType(Quantity).value", "type": "decimal"},
            ]
        }
    ],
}


def params(view: dict[str, Any] | None = None, **values: Any) -> dict[str, Any]:
    parameter: list[dict[str, Any]] = []
    if view is not None:
        parameter.append({"name": "viewResource", "resource": view})
    for name, value in values.items():
        if name == "resource":
            parameter.extend({"name": "resource", "resource": r} for r in value)
        elif name in ("viewReference", "patient"):
            parameter.append({"name": name, "valueReference": {"reference": value}})
        elif isinstance(value, bool):
            parameter.append({"name": name, "valueBoolean": value})
        elif isinstance(value, int):
            parameter.append({"name": name, "valueInteger": value})
        else:
            parameter.append({"name": name, "valueCode": value})
    return {"resourceType": "Parameters", "parameter": parameter}


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=database_url))) as test_client:
        yield test_client


CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


@pytest.fixture
def seeded(client: TestClient) -> dict[str, str]:
    """Two patients (one without a name) and three observations, written over HTTP."""

    def create(resource: dict[str, Any]) -> str:
        response = client.post(f"/fhir/{resource['resourceType']}", json=resource)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    ada = create({"resourceType": "Patient", "name": [{"family": "Lovelace"}, {"family": "King"}]})
    anon = create({"resourceType": "Patient", "gender": "unknown"})
    ids = {"ada": ada, "anon": anon}
    # Heart rates and a body temperature, as the R4 vital signs profiles require them
    # (category, effective time, UCUM units; validation on write checks them).
    for key, patient, code, value, unit in (
        ("o1", ada, "8867-4", 72, "/min"),
        ("o2", ada, "8310-5", 36.6, "Cel"),
        ("o3", anon, "8867-4", 80, "/min"),
    ):
        ids[key] = create(
            {
                "resourceType": "Observation",
                "status": "final",
                "category": [{"coding": [{"system": CATEGORY, "code": "vital-signs"}]}],
                "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "subject": {"reference": f"Patient/{patient}"},
                "effectiveDateTime": "2022-03-01",
                "valueQuantity": {
                    "value": value,
                    "unit": unit,
                    "system": "http://unitsofmeasure.org",
                    "code": unit,
                },
            }
        )
    return ids


def _sorted(rows: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(r, sort_keys=True) for r in rows)


def test_inline_view_json(client: TestClient, seeded: dict[str, str]) -> None:
    response = client.post(RUN, json=params(PATIENT_VIEW, _format="json"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert _sorted(response.json()) == _sorted(
        [
            {"id": seeded["ada"], "family": "Lovelace"},
            {"id": seeded["ada"], "family": "King"},
            {"id": seeded["anon"], "family": None},
        ]
    )


def test_formats(client: TestClient, seeded: dict[str, str]) -> None:
    expected = [
        {"id": seeded["o1"], "patient": seeded["ada"], "code": "8867-4", "value": 72},
        {"id": seeded["o2"], "patient": seeded["ada"], "code": "8310-5", "value": 36.6},
        {"id": seeded["o3"], "patient": seeded["anon"], "code": "8867-4", "value": 80},
    ]
    ndjson = client.post(RUN, json=params(OBS_VIEW, _format="ndjson"))
    assert ndjson.status_code == 200 and "ndjson" in ndjson.headers["content-type"]
    assert _sorted([json.loads(line) for line in ndjson.text.splitlines()]) == _sorted(expected)

    text = client.post(f"{RUN}?_format=csv", json=params(OBS_VIEW))
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(text.text)))
    as_text = [{k: str(v) for k, v in row.items()} for row in expected]
    assert _sorted(rows) == _sorted(as_text)

    bare = client.post(RUN, json=params(OBS_VIEW, _format="csv", header=False))
    assert len(bare.text.splitlines()) == 3 and "id,patient" not in bare.text

    parquet = client.post(RUN, json=params(OBS_VIEW, _format="parquet"))
    assert parquet.status_code == 200
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.column_names == ["id", "patient", "code", "value"]
    # The decimal column is a float64 column in Parquet.
    as_float = [{**row, "value": float(row["value"])} for row in expected]
    assert _sorted(table.to_pylist()) == _sorted(as_float)


def test_limit_patient_and_inline_resources(client: TestClient, seeded: dict[str, str]) -> None:
    limited = client.post(RUN, json=params(OBS_VIEW, _limit=2))
    assert limited.status_code == 200 and len(limited.json()) == 2

    one = client.post(RUN, json=params(OBS_VIEW, patient=f"Patient/{seeded['anon']}"))
    assert [r["id"] for r in one.json()] == [seeded["o3"]]
    herself = client.post(RUN, json=params(PATIENT_VIEW, patient=seeded["ada"]))
    assert {r["id"] for r in herself.json()} == {seeded["ada"]}

    given = [{"resourceType": "Patient", "id": "given1", "name": [{"family": "Given"}]}]
    inline = client.post(RUN, json=params(PATIENT_VIEW, resource=given))
    assert inline.json() == [{"id": "given1", "family": "Given"}]


def test_stored_view_by_reference_and_instance(client: TestClient, seeded: dict[str, str]) -> None:
    data = base64.b64encode(json.dumps(PATIENT_VIEW).encode()).decode()
    binary = {"resourceType": "Binary", "contentType": "application/json", "data": data}
    created = client.put("/fhir/Binary/patient-names", json={**binary, "id": "patient-names"})
    assert created.status_code in (200, 201), created.text
    by_ref = client.post(RUN, json=params(viewReference="ViewDefinition/patient-names"))
    assert by_ref.status_code == 200, by_ref.text
    instance = client.get("/fhir/ViewDefinition/patient-names/$viewdefinition-run?_format=json")
    assert instance.status_code == 200, instance.text
    assert _sorted(by_ref.json()) == _sorted(instance.json())
    assert len(instance.json()) == 3
    system = client.post(
        "/fhir/$viewdefinition-run", json=params(viewReference="Binary/patient-names")
    )
    assert _sorted(system.json()) == _sorted(instance.json())


def test_invalid_views_are_400(client: TestClient) -> None:
    for view, words in (
        ({"resourceType": "ViewDefinition", "select": []}, "resource"),
        ({**PATIENT_VIEW, "select": [{"forEach": "@@"}]}, "@@"),
    ):
        response = client.post(RUN, json=params(view))
        assert response.status_code == 400, (view, response.text)
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert words in outcome["issue"][0]["diagnostics"]
    given = [{"resourceType": "Patient", "id": "p", "name": [{"family": "A"}]}]
    bad_where = client.post(
        RUN, json=params({**PATIENT_VIEW, "where": [{"path": "name.family"}]}, resource=given)
    )
    assert bad_where.status_code == 400 and "boolean" in bad_where.text
    group = client.post(
        RUN,
        json={
            **params(PATIENT_VIEW),
            "parameter": [
                *params(PATIENT_VIEW)["parameter"],
                {"name": "group", "valueReference": {"reference": "Group/1"}},
            ],
        },
    )
    assert group.status_code == 400 and "group" in group.json()["issue"][0]["diagnostics"]
    assert client.post(RUN, json=params(PATIENT_VIEW, _format="xlsx")).status_code == 400


def test_capability_statement_declares_the_operation(client: TestClient) -> None:
    statement = client.get("/fhir/metadata").json()
    operations = statement["rest"][0].get("operation", [])
    assert {
        "name": "viewdefinition-run",
        "definition": "http://sql-on-fhir.org/OperationDefinition/$viewdefinition-run",
    } in operations


def test_patient_token_sees_only_its_compartment(smart: Smart, world: World) -> None:  # noqa: F811
    view = {
        "resourceType": "ViewDefinition",
        "resource": "Observation",
        "select": [
            {
                "column": [
                    {"name": "id", "path": "getResourceKey()"},
                    {"name": "patient", "path": "subject.getReferenceKey(Patient)"},
                ]
            }
        ],
    }
    admin = smart.client.post(RUN, json=params(view), headers=smart.headers(ADMIN))
    assert admin.status_code == 200, admin.text
    assert {r["id"] for r in admin.json()} == {world.obs_a, world.obs_b}
    as_a = smart.headers("patient/*.rs", world.a)
    own = smart.client.post(RUN, json=params(view), headers=as_a)
    assert own.status_code == 200, own.text
    assert own.json() == [{"id": world.obs_a, "patient": world.a}]
    other = smart.client.post(RUN, json=params(view, patient=f"Patient/{world.b}"), headers=as_a)
    assert other.status_code == 200 and other.json() == []
