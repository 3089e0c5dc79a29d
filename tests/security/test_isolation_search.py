"""Searches by patient A: chained parameters, _has, _include and _revinclude never reach
into B's compartment, so that no query is a yes/no oracle on B's data, and history totals
count only A's versions (https://hl7.org/fhir/R4/search.html#chaining, #has, #include,
https://hl7.org/fhir/R4/http.html#history)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.security.conftest import (
    ADMIN,
    B_CODE,
    B_FAMILY,
    B_IDENTIFIER,
    CODE_SYSTEM,
    IDENTIFIER_SYSTEM,
    Links,
    Smart,
    World,
    create,
    observation,
)
from tests.security.leaks import assert_no_leak, entry_ids

NOTHING = "Zz-nothing-has-this"

# (query with {value}, B's value, whether the admin finds a match with B's value)
ORACLES = [
    ("Observation?_id={obs_a_focus_b}&focus:Patient.family={value}", B_FAMILY, True),
    ("Observation?focus:Patient.identifier=" + IDENTIFIER_SYSTEM + "|{value}", B_IDENTIFIER, True),
    ("Observation?subject:Patient.name={value}", B_FAMILY, True),
    ("Patient?_id={a}&_has:Observation:subject:code=" + CODE_SYSTEM + "|{value}", B_CODE, False),
    ("Patient?_id={a}&_has:Observation:focus:code=" + CODE_SYSTEM + "|{value}", B_CODE, True),
    ("Patient?_has:Observation:focus:code={value}", B_CODE, True),
]


def _search(smart: Smart, headers: dict[str, str], query: str) -> Any:
    response = smart.client.get(f"/fhir/{query}", headers=headers)
    assert response.status_code == 200, (query, response.text)
    return response


@pytest.mark.parametrize(("template", "secret", "admin_finds"), ORACLES)
def test_chains_and_has_are_no_oracle_on_b(
    smart: Smart,
    world: World,
    links: Links,
    attacker: dict[str, str],
    template: str,
    secret: str,
    admin_finds: bool,
) -> None:
    """A query whose chain or _has reaches B's data answers as the same query with a value
    nothing has: no match (R4 search.html#chaining, search.html#has)."""
    names = {"a": world.a, "obs_a_focus_b": links.obs_a_focus_b}
    with_b = template.format(value=secret, **names)
    control = template.format(value=NOTHING, **names)
    admin = _search(smart, smart.headers(ADMIN), with_b).json()
    assert bool(entry_ids(admin)) == admin_finds, admin
    got = _search(smart, attacker, with_b)
    nothing = _search(smart, attacker, control)
    assert entry_ids(nothing.json()) == set()
    assert entry_ids(got.json()) == set(), got.text
    assert got.json().get("total", 0) == nothing.json().get("total", 0) == 0
    assert_no_leak(got, world)


def test_include_does_not_bring_b(
    smart: Smart, world: World, links: Links, attacker: dict[str, str]
) -> None:
    """_include from A's Observation whose focus is Patient B: B is not included
    (R4 search.html#include)."""
    world.allow.add(world.b)  # A's own Observation names Patient B as its focus
    for query in (
        f"Observation?_id={links.obs_a_focus_b}&_include=Observation:focus",
        f"Observation?_id={links.obs_a_focus_b}&_include=Observation:focus:Patient",
        f"Observation?_id={links.obs_a_focus_b}&_include=*",
    ):
        admin = _search(smart, smart.headers(ADMIN), query).json()
        assert f"Patient/{world.b}" in entry_ids(admin), query
        got = _search(smart, attacker, query)
        seen = entry_ids(got.json())
        assert f"Observation/{links.obs_a_focus_b}" in seen
        assert seen <= {f"Observation/{links.obs_a_focus_b}", f"Patient/{world.a}"}, query
        assert_no_leak(got, world)


def test_revinclude_does_not_bring_b(
    smart: Smart, world: World, links: Links, attacker: dict[str, str]
) -> None:
    """_revinclude onto A's Patient: B's Observation whose focus is A is not included."""
    world.allow.add(world.b)  # A's own Observation (revincluded by subject) names Patient B
    for query in (
        f"Patient?_id={world.a}&_revinclude=Observation:focus",
        f"Patient?_id={world.a}&_revinclude=Observation:subject&_revinclude=Observation:focus",
    ):
        admin = _search(smart, smart.headers(ADMIN), query).json()
        assert f"Observation/{links.obs_b_focus_a}" in entry_ids(admin), query
        got = _search(smart, attacker, query)
        assert f"Observation/{links.obs_b_focus_a}" not in entry_ids(got.json()), query
        assert f"Patient/{world.a}" in entry_ids(got.json())
        assert_no_leak(got, world)


def _a_versions(entries: list[dict[str, Any]], a: str) -> list[str]:
    """``Type/id/_history/v`` of the history entries that lie in A's compartment: Patient A,
    and resources whose subject or performer is Patient A (a deletion belongs where the
    versions of its resource do)."""
    mine: set[str] = set()
    for entry in entries:
        resource = entry.get("resource")
        if not resource:
            continue
        refs = [resource.get("subject", {}), *resource.get("performer", [])]
        if (resource["resourceType"], resource["id"]) == ("Patient", a) or any(
            r.get("reference") == f"Patient/{a}" for r in refs
        ):
            mine.add(f"{resource['resourceType']}/{resource['id']}")
    versions = []
    for entry in entries:
        location = _location(entry)
        if "/".join(location.split("/")[:2]) in mine:
            versions.append(location)
    return versions


def _location(entry: dict[str, Any]) -> str:
    resource = entry.get("resource")
    if resource:
        return (
            f"{resource['resourceType']}/{resource['id']}/_history/{resource['meta']['versionId']}"
        )
    url = entry["request"]["url"].split("?")[0]
    return f"{url}/_history/{entry['response']['etag'].strip('W/').strip(chr(34))}"


def test_history_totals_count_only_a(
    smart: Smart, world: World, attacker: dict[str, str], gone_b: str
) -> None:
    """Type and system _history: every entry is A's and Bundle.total is the number of A's
    versions (R4 http.html#history, bundle.html Bundle.total)."""
    admin = smart.headers(ADMIN)
    for status in ("amended", "corrected"):
        body = observation(world.b, "heart rate B", B_CODE, status=status, id=world.obs_b)
        assert (
            smart.client.put(
                f"/fhir/Observation/{world.obs_b}", json=body, headers=admin
            ).status_code
            == 200
        )
    own = observation(world.a, "heart rate A", status="amended", id=world.obs_a)
    assert (
        smart.client.put(f"/fhir/Observation/{world.obs_a}", json=own, headers=admin).status_code
        == 200
    )
    create(smart, {"resourceType": "Patient", "name": [{"family": "Charlie"}]})
    problems = []
    for path in ("_history", "Observation/_history", "Patient/_history", "Encounter/_history"):
        everything = _search(smart, admin, f"{path}?_count=500").json()
        expected = _a_versions(everything.get("entry", []), world.a)
        assert len(everything["entry"]) > len(expected) or path == "Encounter/_history"
        got = _search(smart, attacker, f"{path}?_count=500")
        bundle = got.json()
        seen = [_location(e) for e in bundle.get("entry", [])]
        if sorted(seen) != sorted(expected):
            problems.append(f"{path}: entries {seen} != A's {expected}")
        if bundle.get("total") != len(expected):
            problems.append(f"{path}: total {bundle.get('total')} != {len(expected)} A versions")
        try:
            assert_no_leak(got, world)
        except AssertionError as exc:
            problems.append(f"{path}: {str(exc)[:300]}")
        counted = _search(smart, attacker, f"{path}?_summary=count").json().get("total")
        if counted != len(expected):
            problems.append(f"{path}?_summary=count: total {counted} != {len(expected)}")
        paged, totals = _walk(smart, attacker, f"/fhir/{path}?_count=2", world)
        if sorted(paged) != sorted(expected):
            problems.append(f"{path}?_count=2: pages hold {paged} != A's {expected}")
        if any(t != len(expected) for t in totals if t is not None):
            problems.append(f"{path}?_count=2: page totals {totals} != {len(expected)}")
    assert not problems, "\n".join(problems)


def _walk(
    smart: Smart, headers: dict[str, str], url: str, world: World
) -> tuple[list[str], list[int | None]]:
    """Follow ``next`` links: the versions of every page and each page's total."""
    versions: list[str] = []
    totals: list[int | None] = []
    for _ in range(50):
        response = smart.client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        assert_no_leak(response, world)
        bundle = response.json()
        versions += [_location(e) for e in bundle.get("entry", [])]
        totals.append(bundle.get("total"))
        following = [link["url"] for link in bundle.get("link", []) if link["relation"] == "next"]
        if not following:
            break
        url = following[0]
    return versions, totals


TYPE_LIMITED = ["system/Observation.rs", "system/Observation.read"]


@pytest.mark.parametrize("scope", TYPE_LIMITED)
def test_type_limited_client_chains_learn_nothing_of_patients(
    smart: Smart, world: World, links: Links, scope: str
) -> None:
    """A client that may read only Observations: chains through Patient answer the same for
    B's values as for values nothing has (SMART scopes: a type outside them is not there)."""
    headers = smart.headers(scope)
    for template, secret in (
        ("Observation?subject:Patient.family={value}", B_FAMILY),
        ("Observation?focus:Patient.identifier=" + IDENTIFIER_SYSTEM + "|{value}", B_IDENTIFIER),
    ):
        got = smart.client.get(f"/fhir/{template.format(value=secret)}", headers=headers)
        nothing = smart.client.get(f"/fhir/{template.format(value=NOTHING)}", headers=headers)
        assert got.status_code == nothing.status_code, (got.text, nothing.text)
        if got.status_code == 200:
            assert entry_ids(got.json()) == entry_ids(nothing.json()), (template, got.text)


@pytest.mark.parametrize("scope", TYPE_LIMITED)
def test_type_limited_client_gets_no_patient_through_include_or_history(
    smart: Smart, world: World, scope: str
) -> None:
    """A client that may read only Observations: _include brings no Patient, and system
    history shows and counts Observation versions only."""
    headers = smart.headers(scope)
    included = _search(smart, headers, "Observation?_include=Observation:subject")
    assert {i.split("/")[0] for i in entry_ids(included.json())} == {"Observation"}
    assert B_FAMILY not in included.text and B_IDENTIFIER not in included.text
    admin = _search(smart, smart.headers(ADMIN), "_history?_count=500").json()
    observations = [_location(e) for e in admin["entry"] if _location(e).startswith("Observation/")]
    history = _search(smart, headers, "_history?_count=500").json()
    seen = [_location(e) for e in history.get("entry", [])]
    assert sorted(seen) == sorted(observations)
    assert history.get("total", len(seen)) == len(observations)
