"""Transactions and batches of patient A: conditional references, conditional entries and
reads of B's deleted resources answer as if B's data did not exist
(https://hl7.org/fhir/R4/http.html#trules, https://hl7.org/fhir/R4/bundle.html#references,
https://hl7.org/fhir/R4/compartmentdefinition-patient.html)."""

from __future__ import annotations

from typing import Any

from tests.security.conftest import (
    A_IDENTIFIER,
    ADMIN,
    B_CODE,
    B_IDENTIFIER,
    CODE_SYSTEM,
    IDENTIFIER_SYSTEM,
    Smart,
    World,
    observation,
)
from tests.security.leaks import assert_like_missing, assert_no_leak, normalized

NOBODY = "NOBODY-0000"


def _bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def _post(resource: dict[str, Any], **request: Any) -> dict[str, Any]:
    return {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"], **request},
    }


def _observations(smart: Smart) -> dict[str, Any]:
    listed = smart.client.get("/fhir/Observation?_count=500", headers=smart.headers(ADMIN))
    return {e["resource"]["id"]: e["resource"] for e in listed.json().get("entry", [])}


def _by_identifier(value: str) -> dict[str, str]:
    return {"reference": f"Patient?identifier={IDENTIFIER_SYSTEM}|{value}"}


def test_conditional_reference_to_b_is_no_match(
    smart: Smart, world: World, attacker: dict[str, str]
) -> None:
    """A conditional reference whose criteria match only Patient B resolves as no match:
    the transaction fails as it does when nothing matches, and B's id is written nowhere
    (R4 http.html#trules, conditional references)."""
    before = _observations(smart)
    world.allow.add(B_IDENTIFIER)  # the request's own criteria, echoed as for a no-match

    def transaction(headers: dict[str, str], field: str, value: str) -> Any:
        resource = observation(world.a, "mine")
        if field == "subject":
            resource["subject"] = _by_identifier(value)
        else:
            resource[field] = [_by_identifier(value)]
        return smart.client.post(
            "/fhir", json=_bundle("transaction", _post(resource)), headers=headers
        )

    reference = transaction(smart.headers(ADMIN), "focus", NOBODY)
    assert reference.status_code >= 400, reference.text
    problems = []
    for field in ("subject", "focus", "performer"):
        nothing = transaction(attacker, field, NOBODY)
        got = transaction(attacker, field, B_IDENTIFIER)
        try:
            assert nothing.status_code == reference.status_code, nothing.text
            assert normalized(got, B_IDENTIFIER) == normalized(nothing, NOBODY), (
                got.text,
                nothing.text,
            )
            assert world.b not in got.text
            assert_no_leak(got, world, allow=[B_IDENTIFIER])
        except AssertionError as exc:
            problems.append(f"{field}: {str(exc)[:400]}")
    after = _observations(smart)
    written = {i: r for i, r in after.items() if i not in before}
    assert not any(world.b in str(r) for r in written.values()), written
    own = transaction(attacker, "focus", A_IDENTIFIER)
    assert own.status_code == 200, own.text
    assert not problems, "\n".join(problems)


def test_conditional_entries_ignore_b(smart: Smart, world: World, attacker: dict[str, str]) -> None:
    """Transaction entries with ifNoneExist, a conditional update and a conditional delete
    whose criteria match only B's Observation answer as when nothing matches; B unchanged."""
    b_criteria = f"code={CODE_SYSTEM}|{B_CODE}"
    world.allow.add(B_CODE)  # the request's own criteria, echoed as for a no-match
    no_criteria = f"code={CODE_SYSTEM}|nothing-has-this-code"

    def entries(criteria: str) -> list[dict[str, Any]]:
        return [
            _post(observation(world.a, "created"), ifNoneExist=criteria),
            {
                "resource": observation(world.a, "updated"),
                "request": {"method": "PUT", "url": f"Observation?{criteria}"},
            },
        ]

    problems = []
    for name, build in (
        ("ifNoneExist", lambda c: [entries(c)[0]]),
        ("conditional update", lambda c: [entries(c)[1]]),
        (
            "conditional delete",
            lambda c: [{"request": {"method": "DELETE", "url": f"Observation?{c}"}}],
        ),
    ):
        got = smart.client.post(
            "/fhir", json=_bundle("transaction", *build(b_criteria)), headers=attacker
        )
        nothing = smart.client.post(
            "/fhir", json=_bundle("transaction", *build(no_criteria)), headers=attacker
        )
        try:
            assert nothing.status_code == 200, nothing.text
            assert got.status_code == 200, got.text
            statuses = [e["response"]["status"] for e in got.json()["entry"]]
            expected = [e["response"]["status"] for e in nothing.json()["entry"]]
            assert statuses == expected, (statuses, expected)
            assert_no_leak(got, world, allow=[B_CODE])
        except AssertionError as exc:
            problems.append(f"{name}: {str(exc)[:400]}")
    admin = smart.client.get(f"/fhir/Observation/{world.obs_b}", headers=smart.headers(ADMIN))
    assert admin.status_code == 200, "B's Observation was deleted"
    assert admin.json()["meta"]["versionId"] == "1", "B's Observation was replaced"
    assert not problems, "\n".join(problems)


def test_transaction_and_batch_get_of_deleted_b_are_404(
    smart: Smart, world: World, attacker: dict[str, str], gone_b: str
) -> None:
    """GET entries of B's deleted Observation: 404 as for an id nothing has, not 410."""
    problems = []
    for suffix in ("", "/_history/1", "/_history/2"):
        for kind in ("transaction", "batch"):

            def call(i: str, k: str = kind, s: str = suffix) -> Any:
                entry = {"request": {"method": "GET", "url": f"Observation/{i}{s}"}}
                return smart.client.post("/fhir", json=_bundle(k, entry), headers=attacker)

            try:
                response = assert_like_missing(call, gone_b, world)
                if kind == "transaction":
                    assert response.status_code == 404, response.text
                else:
                    assert response.json()["entry"][0]["response"]["status"].startswith("404")
            except AssertionError as exc:
                problems.append(f"{kind} GET Observation/<gone>{suffix}: {str(exc)[:300]}")
    assert not problems, "\n".join(problems)


def test_transaction_writes_onto_b_are_like_missing(
    smart: Smart, world: World, attacker: dict[str, str], gone_b: str
) -> None:
    """Batch PUT entries onto B's live or deleted id answer 404, DELETE entries of them
    answer as for ids nothing has (nothing deleted); B's resources unchanged."""
    problems = []
    for hidden in (world.obs_b, gone_b):

        def put(i: str) -> Any:
            entry = {
                "resource": {**observation(world.a, "taken over"), "id": i},
                "request": {"method": "PUT", "url": f"Observation/{i}"},
            }
            return smart.client.post("/fhir", json=_bundle("batch", entry), headers=attacker)

        try:
            response = put(hidden)
            assert response.status_code == 200, response.text
            assert response.json()["entry"][0]["response"]["status"].startswith("404"), (
                response.text
            )
        except AssertionError as exc:
            problems.append(f"batch PUT Observation/{hidden}: {str(exc)[:300]}")

        def delete(i: str) -> Any:
            entry = {"request": {"method": "DELETE", "url": f"Observation/{i}"}}
            return smart.client.post("/fhir", json=_bundle("batch", entry), headers=attacker)

        try:
            assert_like_missing(delete, hidden, world, 200)
        except AssertionError as exc:
            problems.append(f"batch DELETE Observation/{hidden}: {str(exc)[:300]}")
    admin = smart.headers(ADMIN)
    assert (
        smart.client.get(f"/fhir/Observation/{world.obs_b}", headers=admin).json()["meta"][
            "versionId"
        ]
        == "1"
    )
    gone = smart.client.get(f"/fhir/Observation/{gone_b}", headers=admin)
    if gone.status_code != 410:
        problems.append(f"B's deleted Observation answers {gone.status_code}: re-created")
    assert not problems, "\n".join(problems)


def test_transaction_create_into_b_compartment_is_403(
    smart: Smart, world: World, attacker: dict[str, str]
) -> None:
    """A transaction creating A's Observation and one whose subject is B (A its performer):
    403 naming no id of B's, nothing written (R4 http.html#trules: all or nothing)."""
    before = _observations(smart)
    mine = observation(world.a, "mine")
    theirs = observation(world.b, "theirs", performer=[{"reference": f"Patient/{world.a}"}])
    response = smart.client.post(
        "/fhir", json=_bundle("transaction", _post(mine), _post(theirs)), headers=attacker
    )
    assert response.status_code == 403, response.text
    assert world.b not in response.text
    assert set(_observations(smart)) == set(before)
