"""Result handling: paging, sorting, totals, shaping, includes, chains, compartments
(https://hl7.org/fhir/R4/search.html#return, https://hl7.org/fhir/R4/search.html#chaining)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.helpers import assert_outcome
from tests.search.helpers import ids, link, search

Post = Callable[[dict[str, Any]], dict[str, Any]]


def _patient(family: str, birth: str = "1980-01-01") -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": family}], "birthDate": birth}


def _obs(patient: str, code: str, day: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": day,
    }


def _all_pages(
    client: TestClient, url: str, between: Callable[[], None] | None = None
) -> list[str]:
    seen: list[str] = []
    next_url: str | None = url
    while next_url:
        bundle = search(client, next_url)
        seen += [e["resource"]["id"] for e in bundle.get("entry", [])]
        next_url = link(bundle, "next")
        if between is not None:
            between()
    return seen


@pytest.mark.parametrize("sort", ["", "&_sort=family", "&_sort=-_lastUpdated,family"])
def test_keyset_paging_is_stable_while_resources_are_added(
    client: TestClient, post: Post, sort: str
) -> None:
    first = [post(_patient(f"Page{i:02d}"))["id"] for i in range(12)]
    added: list[str] = []

    def add_one() -> None:
        added.append(post(_patient(f"Late{len(added)}"))["id"])

    seen = _all_pages(client, f"/fhir/Patient?_count=5{sort}", add_one)
    assert len(seen) == len(set(seen)), "no entry repeats"
    assert set(first) <= set(seen), "no entry that existed at the start is skipped"
    assert set(seen) <= set(first) | set(added)


def test_sort_descending_multiple_keys_and_previous_link(client: TestClient, post: Post) -> None:
    a = post(_patient("Adams", "1990-01-01"))["id"]
    b = post(_patient("Baker", "1970-01-01"))["id"]
    c = post(_patient("Adams", "1960-01-01"))["id"]
    names = search(client, "/fhir/Patient?_sort=family,-birthdate")
    assert [e["resource"]["id"] for e in names["entry"]] == [a, c, b]
    pages = _all_pages(client, "/fhir/Patient?_sort=-birthdate&_count=1")
    assert pages == [a, b, c]
    second = search(
        client, link(search(client, "/fhir/Patient?_sort=birthdate&_count=1"), "next") or ""
    )
    previous = link(second, "previous")
    assert previous is not None
    assert [e["resource"]["id"] for e in search(client, previous)["entry"]] == [c]


def test_total_modes_and_summary_count(client: TestClient, post: Post) -> None:
    for i in range(3):
        post(_patient(f"Total{i}"))
    assert search(client, "/fhir/Patient?_count=1")["total"] == 3
    assert search(client, "/fhir/Patient?_total=accurate")["total"] == 3
    assert "total" not in search(client, "/fhir/Patient?_total=none")
    counted = search(client, "/fhir/Patient?_summary=count")
    assert counted["total"] == 3
    assert "entry" not in counted


def test_summary_and_elements(client: TestClient, post: Post) -> None:
    post({**_patient("Shape"), "text": {"status": "generated", "div": "<div>x</div>"}})
    data = search(client, "/fhir/Patient?_summary=data")["entry"][0]["resource"]
    assert "text" not in data
    assert data["meta"]["tag"][0]["code"] == "SUBSETTED"
    only = search(client, "/fhir/Patient?_elements=birthDate")["entry"][0]["resource"]
    assert only["birthDate"] == "1980-01-01"
    assert "name" not in only
    summary = search(client, "/fhir/Patient?_summary=true")["entry"][0]["resource"]
    assert "text" not in summary
    assert summary["name"][0]["family"] == "Shape"


def test_include_revinclude_iterate_and_star(client: TestClient, post: Post) -> None:
    org = post({"resourceType": "Organization", "name": "Clinic"})["id"]
    patient = post(
        {**_patient("Inc"), "managingOrganization": {"reference": f"Organization/{org}"}}
    )["id"]
    obs = post(_obs(patient, "1234-5", "2020-01-01"))["id"]
    url = "/fhir/Observation?_include=Observation:subject"
    bundle = search(client, url)
    assert ids(bundle) == {obs}
    assert ids(bundle, "include") == {patient}
    deeper = search(client, url + "&_include:iterate=Patient:organization")
    assert ids(deeper, "include") == {patient, org}
    star = search(client, "/fhir/Observation?_include=*")
    assert patient in ids(star, "include")
    rev = search(client, f"/fhir/Patient?_id={patient}&_revinclude=Observation:subject")
    assert ids(rev, "include") == {obs}
    typed = search(client, "/fhir/Observation?_include=Observation:subject:Group")
    assert ids(typed, "include") == set()


def test_chains_and_reverse_chains(client: TestClient, post: Post) -> None:
    org = post({"resourceType": "Organization", "name": "Mercy"})["id"]
    peter = post(
        {**_patient("Chain"), "managingOrganization": {"reference": f"Organization/{org}"}}
    )["id"]
    other = post(_patient("Other"))["id"]
    on_peter = post(_obs(peter, "1234-5", "2020-01-01"))["id"]
    post(_obs(other, "9999-9", "2020-01-01"))
    assert ids(search(client, "/fhir/Observation?subject:Patient.name=chain")) == {on_peter}
    assert ids(search(client, "/fhir/Observation?patient.name=chain")) == {on_peter}
    deep = "/fhir/Observation?subject:Patient.organization.name=mercy"
    assert ids(search(client, deep)) == {on_peter}
    assert ids(search(client, "/fhir/Patient?_has:Observation:patient:code=1234-5")) == {peter}
    chained_include = search(
        client, "/fhir/Observation?patient.name=chain&_include=Observation:patient"
    )
    assert ids(chained_include, "include") == {peter}


def test_lenient_and_strict_handling(client: TestClient, post: Post) -> None:
    patient = post(_patient("Lenient"))["id"]
    bundle = search(client, "/fhir/Patient?unknown-param=1&family=lenient")
    assert ids(bundle) == {patient}
    outcome = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert "unknown-param" in outcome[0]["resource"]["issue"][0]["diagnostics"]
    strict = client.get("/fhir/Patient?unknown-param=1", headers={"Prefer": "handling=strict"})
    assert_outcome(strict, 400, "unknown-param")
    assert_outcome(client.get("/fhir/Patient?family:nonsense=x"), 400, "nonsense")


def test_post_search_and_system_search(client: TestClient, post: Post) -> None:
    patient = post(_patient("Poster"))["id"]
    obs = post(_obs(patient, "1234-5", "2020-01-01"))["id"]
    response = client.post(
        "/fhir/Patient/_search?family=post",
        content="_count=5",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    assert {e["resource"]["id"] for e in response.json()["entry"]} == {patient}
    both = search(client, "/fhir?_type=Patient,Observation")
    assert ids(both) == {patient, obs}
    by_id = search(client, f"/fhir?_type=Patient,Observation&_id={obs}")
    assert ids(by_id) == {obs}


def test_compartment_and_everything(client: TestClient, post: Post) -> None:
    mine = post(_patient("Mine"))["id"]
    theirs = post(_patient("Theirs"))["id"]
    my_obs = [post(_obs(mine, "1234-5", f"2020-01-0{i}"))["id"] for i in range(1, 4)]
    post(_obs(theirs, "1234-5", "2020-01-01"))
    condition = post(
        {
            "resourceType": "Condition",
            "subject": {"reference": f"Patient/{mine}"},
            "code": {"text": "x"},
        }
    )["id"]
    assert ids(search(client, f"/fhir/Patient/{mine}/Observation")) == set(my_obs)
    assert ids(search(client, f"/fhir/Patient/{mine}/Observation?date=2020-01-02")) == {my_obs[1]}
    pages = _all_pages(client, f"/fhir/Patient/{mine}/$everything?_count=2")
    assert sorted(pages) == sorted([mine, condition, *my_obs])
    only = search(client, f"/fhir/Patient/{mine}/$everything?_type=Condition")
    assert ids(only) == {condition}
    later = search(client, f"/fhir/Patient/{mine}/$everything?_since=2100-01-01T00:00:00Z")
    assert ids(later) == set()
    assert_outcome(client.get("/fhir/Patient/nobody/$everything"), 404)


@pytest.mark.parametrize(
    "url",
    [
        "/fhir/Patient?name=' OR 1=1; DROP TABLE resource; --",
        "/fhir/Patient?family:exact=%00%27%22",
        "/fhir/Patient?birthdate=2020-02-30",
        "/fhir/Patient?birthdate=99999-01-01",
        "/fhir/Patient?birthdate=ge0001-01-01",
        "/fhir/Patient?birthdate=le9999-12-31T23:59:59Z",
        "/fhir/Observation?value-quantity=1e999",
        "/fhir/Observation?value-quantity=abc|x|y|z",
        "/fhir/Patient?name=" + "x" * 10_000,
        "/fhir/Patient?_count=-1",
        "/fhir/Patient?_count=abc",
        "/fhir/Patient?_sort=nonsense",
        "/fhir/Patient?_cursor=not-a-cursor",
        "/fhir/Patient?_has:Nope:x:y=1",
        "/fhir/Patient?general-practitioner.name=x",
        "/fhir/Observation?subject:Patient.name.family.x=1",
        "/fhir/Patient?_include=garbage",
        "/fhir/Patient?_total=some",
    ],
)
def test_hostile_values_never_500(client: TestClient, post: Post, url: str) -> None:
    post(_patient("Hostile"))
    response = client.get(url)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 200:
        assert response.json()["resourceType"] == "Bundle"
    else:
        assert_outcome(response, 400)
    assert search(client, "/fhir/Patient")["total"] == 1


def test_capability_statement_lists_search_params(client: TestClient) -> None:
    statement = client.get("/fhir/metadata").json()
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    patient = {p["name"]: p["type"] for p in resources["Patient"]["searchParam"]}
    assert patient["name"] == "string"
    assert patient["birthdate"] == "date"
    assert patient["_lastUpdated"] == "date"
    observation = {p["name"] for p in resources["Observation"]["searchParam"]}
    assert {"code", "subject", "value-quantity", "date"} <= observation
    assert {"code-value-quantity", "component-code-value-quantity"} <= observation
    sequence = {p["name"] for p in resources["MolecularSequence"]["searchParam"]}
    assert "chromosome" in sequence
    assert "chromosome-variant-coordinate" in sequence, "three-part composites"
    assert "Observation:subject" in resources["Observation"]["searchInclude"]


def test_everything_includes_what_the_compartment_references(
    client: TestClient, post: Post
) -> None:
    """R4 $everything: "the server SHOULD also return resources referenced by the patient
    compartment resources" (Medication, Practitioner, ...), as include entries; what
    nothing in the compartment references stays out."""
    mine = post(_patient("Referrer"))["id"]
    medication = post({"resourceType": "Medication", "code": {"text": "doxorubicin"}})["id"]
    doctor = post({"resourceType": "Practitioner", "name": [{"family": "Oncologist"}]})["id"]
    post({"resourceType": "Practitioner", "name": [{"family": "Stranger"}]})
    given = post(
        {
            "resourceType": "MedicationAdministration",
            "status": "completed",
            "medicationReference": {"reference": f"Medication/{medication}"},
            "subject": {"reference": f"Patient/{mine}"},
            "performer": [{"actor": {"reference": f"Practitioner/{doctor}"}}],
            "effectiveDateTime": "2021-03-12",
        }
    )["id"]
    bundle = search(client, f"/fhir/Patient/{mine}/$everything")
    modes = {
        (e["resource"]["resourceType"], e["resource"]["id"]): e["search"]["mode"]
        for e in bundle["entry"]
    }
    assert modes == {
        ("Patient", mine): "match",
        ("MedicationAdministration", given): "match",
        ("Medication", medication): "include",
        ("Practitioner", doctor): "include",
    }
    only = search(client, f"/fhir/Patient/{mine}/$everything?_type=MedicationAdministration")
    assert ids(only) == {given}
    assert ids(only, "include") == set()
