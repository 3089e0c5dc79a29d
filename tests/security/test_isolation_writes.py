"""Writes by patient A: B's resources (live or deleted) cannot be replaced, deleted or
taken over, and a resource A writes lies in A's compartment and in no other patient's, by
the parameters of CompartmentDefinition-patient (https://hl7.org/fhir/R4/http.html#update,
https://hl7.org/fhir/R4/compartmentdefinition-patient.html)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.security.conftest import (
    ADMIN,
    B_CODE,
    B_IDENTIFIER,
    CODE_SYSTEM,
    IDENTIFIER_SYSTEM,
    Smart,
    World,
    create,
    observation,
)
from tests.security.leaks import (
    assert_like_missing,
    assert_no_leak,
    entry_ids,
    new_id,
    normalized,
)


def _admin_history(smart: Smart, path: str) -> list[dict[str, Any]]:
    response = smart.client.get(f"/fhir/{path}/_history", headers=smart.headers(ADMIN))
    assert response.status_code == 200, response.text
    return list(response.json().get("entry", []))


def _count(smart: Smart, rtype: str) -> int:
    response = smart.client.get(f"/fhir/{rtype}?_summary=count", headers=smart.headers(ADMIN))
    return int(response.json()["total"])


def test_put_onto_b_ids_is_like_missing(
    smart: Smart, world: World, attacker: dict[str, str], gone_b: str
) -> None:
    """PUT of A's content onto B's live or deleted id: the 404 of a read of an id nothing
    has; B's resource and history unchanged (the deleted one is not re-created for A)."""
    before = {i: _admin_history(smart, f"Observation/{i}") for i in (world.obs_b, gone_b)}
    assert [len(h) for h in before.values()] == [1, 2]
    control = smart.client.get(f"/fhir/Observation/{new_id()}", headers=attacker)
    problems = []
    for hidden in (world.obs_b, gone_b):
        body = {**observation(world.a, "taken over"), "id": hidden}
        response = smart.client.put(f"/fhir/Observation/{hidden}", json=body, headers=attacker)
        try:
            assert response.status_code == 404, response.text
            missing = control.request.url.path.rsplit("/", 1)[-1]
            assert normalized(response, hidden) == normalized(control, missing)
            assert_no_leak(response, world)
        except AssertionError as exc:
            problems.append(f"PUT Observation/{hidden}: {str(exc)[:400]}")
    for hidden, history in before.items():
        if _admin_history(smart, f"Observation/{hidden}") != history:
            problems.append(f"Observation/{hidden}: its history changed")
    gone = smart.client.get(f"/fhir/Observation/{gone_b}", headers=smart.headers(ADMIN))
    if gone.status_code != 410:
        problems.append(f"B's deleted Observation answers {gone.status_code}: re-created")
    assert not problems, "\n".join(problems)


def test_delete_of_b_is_like_deleting_nothing(
    smart: Smart, world: World, attacker: dict[str, str]
) -> None:
    """DELETE of B's resources answers as a delete of an id nothing has (R4 http.html#delete:
    2xx, nothing deleted); B's resources are still there."""
    problems = []
    for rtype, hidden in (
        ("Observation", world.obs_b),
        ("Encounter", world.enc_b),
        ("Patient", world.b),
    ):

        def delete(i: str, t: str = rtype) -> httpx.Response:
            return smart.client.delete(f"/fhir/{t}/{i}", headers=attacker)

        try:
            response = assert_like_missing(delete, hidden, world)
            assert response.status_code in (200, 204), response.text
        except AssertionError as exc:
            problems.append(f"DELETE {rtype}/{hidden}: {str(exc)[:400]}")
        still = smart.client.get(f"/fhir/{rtype}/{hidden}", headers=smart.headers(ADMIN))
        assert still.status_code == 200, (rtype, still.text)
        assert still.json()["meta"]["versionId"] == "1"
    assert not problems, "\n".join(problems)


def _patient(ref: str) -> dict[str, str]:
    return {"reference": f"Patient/{ref}"}


def _in_b_compartment(world: World) -> list[tuple[str, dict[str, Any]]]:
    """Content in B's compartment by a CompartmentDefinition-patient parameter, each also
    naming A (so that a check which only looks for A somewhere lets it through)."""
    a, b = world.a, world.b
    document = {
        "resourceType": "DocumentReference",
        "status": "current",
        "content": [{"attachment": {"contentType": "text/plain", "data": "aGk="}}],
    }
    return [
        ("Observation.subject=B, performer=A", observation(b, "x", performer=[_patient(a)])),
        ("Observation.performer=B", observation(a, "x", performer=[_patient(b)])),
        (
            "Condition.asserter=B",
            {
                "resourceType": "Condition",
                "code": {"text": "x"},
                "subject": _patient(a),
                "asserter": _patient(b),
            },
        ),
        (
            "DocumentReference.author=B",
            {**document, "subject": _patient(a), "author": [_patient(b)]},
        ),
        (
            "DocumentReference.subject=B",
            {**document, "subject": _patient(b), "author": [_patient(a)]},
        ),
    ]


def test_create_into_b_compartment_is_403(
    smart: Smart, world: World, attacker: dict[str, str]
) -> None:
    """POST of content in B's compartment: 403 naming no id of B's, nothing written."""
    problems = []
    for label, resource in _in_b_compartment(world):
        rtype = resource["resourceType"]
        count = _count(smart, rtype)
        try:
            response = smart.client.post(f"/fhir/{rtype}", json=resource, headers=attacker)
            assert response.status_code == 403, response.text
            assert response.json()["resourceType"] == "OperationOutcome"
            assert world.b not in response.text, response.text
            assert_no_leak(response, world)
        except AssertionError as exc:
            problems.append(f"POST {label}: {str(exc)[:300]}")
        if _count(smart, rtype) != count:
            problems.append(f"POST {label}: written")
    assert not problems, "\n".join(problems)


def test_update_into_b_compartment_is_403(
    smart: Smart, world: World, attacker: dict[str, str]
) -> None:
    """PUT of A's own resource (or of a new id) with content in B's compartment: 403, the
    resource unchanged, the new id not created."""
    problems = []
    for label, resource in _in_b_compartment(world):
        rtype = resource["resourceType"]
        if rtype == "Observation":
            own = world.obs_a
        else:
            own = create(
                smart, {**resource, "subject": _patient(world.a)} | _a_only(resource, world)
            )
        fresh = new_id()
        for target in (own, fresh):
            body = {**resource, "id": target}
            try:
                response = smart.client.put(f"/fhir/{rtype}/{target}", json=body, headers=attacker)
                assert response.status_code == 403, response.text
                assert world.b not in response.text, response.text
            except AssertionError as exc:
                problems.append(f"PUT {label} onto {'own' if target == own else 'new'}: {exc}")
        admin = smart.headers(ADMIN)
        kept = smart.client.get(f"/fhir/{rtype}/{own}", headers=admin).json()
        if kept["meta"]["versionId"] != "1":
            problems.append(f"PUT {label}: A's {rtype} was replaced")
            # put it back so the next case starts from A's own content
            smart.client.put(f"/fhir/{rtype}/{own}", json=_restored(kept, world), headers=admin)
        if smart.client.get(f"/fhir/{rtype}/{fresh}", headers=admin).status_code != 404:
            problems.append(f"PUT {label}: {rtype} with a new id was created")
    assert not problems, "\n".join(problems)


def _restored(resource: dict[str, Any], world: World) -> dict[str, Any]:
    body = {k: v for k, v in resource.items() if k != "meta"}
    body["subject"] = _patient(world.a)
    body.pop("performer", None)
    return body | _a_only(resource, world)


def _a_only(resource: dict[str, Any], world: World) -> dict[str, Any]:
    """The fields of ``resource`` that name a patient, rewritten to name A only."""
    fields: dict[str, Any] = {}
    if "asserter" in resource:
        fields["asserter"] = _patient(world.a)
    if "author" in resource:
        fields["author"] = [_patient(world.a)]
    return fields


B_CODE_CRITERIA = f"code={CODE_SYSTEM}|{B_CODE}"
NO_CODE_CRITERIA = f"code={CODE_SYSTEM}|nothing-has-this-code"


def test_conditional_create_ignores_b(smart: Smart, world: World, attacker: dict[str, str]) -> None:
    """If-None-Exist whose criteria match only B's Observation: no match, A's resource is
    created as when nothing matches (R4 http.html#ccreate), in A's compartment."""
    statuses = []
    for criteria in (B_CODE_CRITERIA, NO_CODE_CRITERIA):
        response = smart.client.post(
            "/fhir/Observation",
            json=observation(world.a, "mine"),
            headers={**attacker, "If-None-Exist": criteria},
        )
        statuses.append(response.status_code)
        assert_no_leak(response, world)
        if response.status_code == 201:
            assert response.json()["subject"] == _patient(world.a)
    assert statuses == [201, 201]
    admin = smart.client.get(f"/fhir/Observation/{world.obs_b}", headers=smart.headers(ADMIN))
    assert admin.json()["meta"]["versionId"] == "1"


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_conditional_write_ignores_b(
    smart: Smart, world: World, attacker: dict[str, str], method: str
) -> None:
    """Conditional update, patch and delete whose criteria match only B's Observation answer
    as when nothing matches (R4 http.html#cond-update, #patch, #cdelete); B unchanged."""
    headers = dict(attacker)
    kwargs: dict[str, Any] = {}
    if method == "PUT":
        kwargs["json"] = observation(world.a, "mine")
    elif method == "PATCH":
        headers["Content-Type"] = "application/json-patch+json"
        kwargs["json"] = [{"op": "replace", "path": "/status", "value": "amended"}]

    def call(criteria: str) -> Any:
        url = f"/fhir/Observation?{criteria}"
        return smart.client.request(method, url, headers=headers, **kwargs)

    got, control = call(B_CODE_CRITERIA), call(NO_CODE_CRITERIA)
    assert_no_leak(got, world)
    expected = {"PUT": 201, "PATCH": 404, "DELETE": 200}[method]
    assert control.status_code in (expected, 204), control.text
    assert got.status_code == control.status_code, (got.text, control.text)
    assert normalized(got, B_CODE_CRITERIA) == normalized(control, NO_CODE_CRITERIA)
    if method == "PUT":
        assert got.json()["subject"] == _patient(world.a)
    admin = smart.client.get(f"/fhir/Observation/{world.obs_b}", headers=smart.headers(ADMIN))
    assert admin.status_code == 200
    assert (admin.json()["meta"]["versionId"], admin.json()["status"]) == ("1", "final")


def test_conditional_delete_of_b_patient_by_identifier(
    smart: Smart, world: World, attacker: dict[str, str]
) -> None:
    """DELETE Patient?identifier=<B's>: as when nothing matches; Patient B still there."""
    b_criteria = f"identifier={IDENTIFIER_SYSTEM}|{B_IDENTIFIER}"
    none_criteria = f"identifier={IDENTIFIER_SYSTEM}|NOBODY-0000"
    got = smart.client.delete(f"/fhir/Patient?{b_criteria}", headers=attacker)
    control = smart.client.delete(f"/fhir/Patient?{none_criteria}", headers=attacker)
    assert_no_leak(got, world)
    assert normalized(got, b_criteria) == normalized(control, none_criteria)
    admin = smart.client.get(f"/fhir/Patient/{world.b}", headers=smart.headers(ADMIN))
    assert admin.status_code == 200
    listed = smart.client.get("/fhir/Patient", headers=smart.headers(ADMIN)).json()
    assert f"Patient/{world.b}" in entry_ids(listed)


def test_patch_into_b_compartment_is_403(
    smart: Smart, world: World, attacker: dict[str, str]
) -> None:
    """JSON Patch of A's own Observation that adds Patient B as performer, or makes B its
    subject while A stays performer: 403 naming no id of B's, A's Observation unchanged
    (R4 http.html#patch, CompartmentDefinition-patient Observation: subject, performer)."""
    headers = {**attacker, "Content-Type": "application/json-patch+json"}
    problems = []
    for label, operations in (
        ("performer=B", [{"op": "add", "path": "/performer", "value": [_patient(world.b)]}]),
        (
            "subject=B, performer=A",
            [
                {"op": "add", "path": "/performer", "value": [_patient(world.a)]},
                {"op": "replace", "path": "/subject", "value": _patient(world.b)},
            ],
        ),
    ):
        try:
            response = smart.client.patch(
                f"/fhir/Observation/{world.obs_a}", json=operations, headers=headers
            )
            assert response.status_code == 403, response.text
            assert world.b not in response.text, response.text
        except AssertionError as exc:
            problems.append(f"PATCH {label}: {str(exc)[:300]}")
        kept = smart.client.get(f"/fhir/Observation/{world.obs_a}", headers=smart.headers(ADMIN))
        if kept.json()["meta"]["versionId"] != "1":
            problems.append(f"PATCH {label}: A's Observation was changed")
            restore = _restored(kept.json(), world)
            smart.client.put(
                f"/fhir/Observation/{world.obs_a}", json=restore, headers=smart.headers(ADMIN)
            )
    assert not problems, "\n".join(problems)
