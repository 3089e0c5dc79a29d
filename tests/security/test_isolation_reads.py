"""Reads by patient A of patient B's resources answer exactly as reads of ids that do not
exist: read, vread, instance history, compartment search, $everything, PATCH, whether B's
resource is live or deleted (https://hl7.org/fhir/R4/http.html#read,
https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.security.conftest import (
    ADMIN,
    B_CODE,
    B_FAMILY,
    Links,
    Smart,
    World,
    create,
    observation,
)
from tests.security.leaks import assert_like_missing, assert_no_leak, entry_ids, new_id

# (resource type, which of B's resources, what follows the id)
READS = [
    ("Patient", "b", ""),
    ("Patient", "b", "/_history/1"),
    ("Patient", "b", "/_history"),
    ("Patient", "b", "/Observation"),
    ("Patient", "b", "/$everything"),
    ("Observation", "obs_b", ""),
    ("Observation", "obs_b", "/_history/1"),
    ("Observation", "obs_b", "/_history"),
    ("Encounter", "enc_b", ""),
    ("Encounter", "enc_b", "/_history"),
    ("Observation", "gone", ""),
    ("Observation", "gone", "/_history/1"),
    ("Observation", "gone", "/_history/2"),
    ("Observation", "gone", "/_history"),
]


def _b_id(world: World, gone: str, which: str) -> str:
    return gone if which == "gone" else str(getattr(world, which))


def test_reads_of_b_are_like_missing_ids(
    smart: Smart, world: World, attacker: dict[str, str], gone_b: str
) -> None:
    """Read, vread, instance history, compartment search and $everything of B's live and
    deleted resources: the 404 of an id nothing has (R4 http.html#read, #vread)."""
    problems = []
    for rtype, which, suffix in READS:
        hidden = _b_id(world, gone_b, which)

        def read(i: str, t: str = rtype, s: str = suffix) -> httpx.Response:
            return smart.client.get(f"/fhir/{t}/{i}{s}", headers=attacker)

        try:
            # a compartment search of an unknown patient may be 404 or an empty searchset
            status = None if suffix == "/Observation" else 404
            assert_like_missing(read, hidden, world, status)
        except AssertionError as exc:
            problems.append(f"GET {rtype}/<{which}>{suffix}: {str(exc)[:400]}")
    assert not problems, "\n".join(problems)


def test_patch_of_b_is_like_missing_ids(
    smart: Smart, world: World, attacker: dict[str, str], gone_b: str
) -> None:
    """PATCH of B's live or deleted Observation: 404 as for an id nothing has, not 403/410
    (R4 http.html#patch); B's resource unchanged."""
    headers = {**attacker, "Content-Type": "application/json-patch+json"}
    operations = [{"op": "replace", "path": "/status", "value": "amended"}]
    problems = []
    for hidden in (world.obs_b, gone_b):
        try:
            assert_like_missing(
                lambda i: smart.client.patch(
                    f"/fhir/Observation/{i}", json=operations, headers=headers
                ),
                hidden,
                world,
                404,
            )
        except AssertionError as exc:
            problems.append(f"PATCH Observation/{hidden}: {str(exc)[:400]}")
    admin = smart.headers(ADMIN)
    live = smart.client.get(f"/fhir/Observation/{world.obs_b}", headers=admin).json()
    assert (live["meta"]["versionId"], live["status"]) == ("1", "final")
    assert smart.client.get(f"/fhir/Observation/{gone_b}", headers=admin).status_code == 410
    assert not problems, "\n".join(problems)


def test_everything_of_a_holds_nothing_of_b(
    smart: Smart, world: World, attacker: dict[str, str], links: Links
) -> None:
    """Patient/A/$everything: A's compartment and what it references, never B's resources,
    although A's Observation references Patient B (R4 patient-operation-everything)."""
    world.allow.add(world.b)  # A's own Observation names Patient B as its focus
    response = smart.client.get(f"/fhir/Patient/{world.a}/$everything", headers=attacker)
    assert response.status_code == 200, response.text
    seen = entry_ids(response.json())
    assert {f"Patient/{world.a}", f"Observation/{world.obs_a}"} <= seen
    assert f"Observation/{links.obs_a_focus_b}" in seen
    outside = {f"Patient/{world.b}", f"Observation/{world.obs_b}", f"Encounter/{world.enc_b}"}
    assert not seen & (outside | {f"Observation/{links.obs_b_focus_a}"}), seen
    assert_no_leak(response, world)
    assert response.text.count(world.b) == 1, "only A's own focus reference names B"


def _without_date(response: Any) -> Any:
    body = response.json()
    body.pop("date", None)
    return body


def test_counts_and_metadata_reveal_nothing_of_b(
    smart: Smart, world: World, attacker: dict[str, str]
) -> None:
    """Totals (_summary=count, _total=accurate) count A's compartment only, and the
    CapabilityStatement does not change when B's data grows (R4 search.html#total)."""
    admin = smart.headers(ADMIN)
    by_subject = smart.client.get(f"/fhir/Observation?subject=Patient/{world.a}", headers=admin)
    by_performer = smart.client.get(f"/fhir/Observation?performer=Patient/{world.a}", headers=admin)
    visible = entry_ids(by_subject.json()) | entry_ids(by_performer.json())
    assert visible == {f"Observation/{world.obs_a}"}
    before = smart.client.get("/fhir/metadata", headers=attacker)
    assert before.status_code == 200
    for query, expected in (
        ("/fhir/Observation?_summary=count", len(visible)),
        ("/fhir/Observation?_total=accurate", len(visible)),
        (f"/fhir/Observation?code={B_CODE}&_summary=count", 0),
        ("/fhir/Patient?_summary=count", 1),
        ("/fhir/Encounter?_summary=count", 0),
        ("/fhir?_type=Patient,Observation,Encounter&_summary=count", 1 + len(visible)),
    ):
        response = smart.client.get(query, headers=attacker)
        assert response.status_code == 200, (query, response.text)
        assert response.json().get("total") == expected, (query, response.json())
        assert_no_leak(response, world)
    for n in range(3):
        create(smart, observation(world.b, f"more of B {n}", B_CODE))
    after = smart.client.get("/fhir/metadata", headers=attacker)
    assert _without_date(after) == _without_date(before)
    assert_no_leak(after, world)
    never = smart.client.get(f"/fhir/Observation/{new_id()}", headers=attacker)
    assert never.status_code == 404


def test_the_leak_check_catches_what_it_should() -> None:
    """The check used on every response to A: B's id or family name in a response is
    caught, an id echoed from the request's own URL is not."""
    world = World("id-of-a", "id-of-b", "obs-of-a", "obs-of-b", "enc-of-b")
    listing = httpx.Request("GET", "http://testserver/fhir/Observation")
    for text in ('{"subject":{"reference":"Patient/id-of-b"}}', f'{{"family":"{B_FAMILY}"}}'):
        with pytest.raises(AssertionError):
            assert_no_leak(httpx.Response(200, text=text, request=listing), world)
    read = httpx.Request("GET", "http://testserver/fhir/Observation/obs-of-b")
    assert_no_leak(
        httpx.Response(404, text="Observation/obs-of-b is not known", request=read), world
    )
    world.allow.add("id-of-b")
    assert_no_leak(httpx.Response(200, text="Patient/id-of-b", request=listing), world)
