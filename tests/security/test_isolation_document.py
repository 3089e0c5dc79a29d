"""Composition/{id}/$document under a patient scope: the document of a Composition in the
token's compartment holds only what that compartment may read; another patient's
Composition answers as an id nothing has
(https://hl7.org/fhir/R4/composition-operation-document.html,
https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.security.conftest import ADMIN, Smart, World, create
from tests.security.leaks import assert_like_missing, entry_ids


def composition(patient: str, entries: list[str]) -> dict[str, Any]:
    """A Composition about ``patient``, written by them, listing ``entries``."""
    return {
        "resourceType": "Composition",
        "status": "final",
        "type": {"text": "note"},
        "subject": {"reference": f"Patient/{patient}"},
        "date": "2024-01-01",
        "author": [{"reference": f"Patient/{patient}"}],
        "title": "Summary",
        "section": [{"title": "Results", "entry": [{"reference": r} for r in entries]}],
    }


def test_another_patients_document_is_like_a_missing_one(
    smart: Smart, world: World, attacker: dict[str, str]
) -> None:
    hidden = create(smart, composition(world.b, [f"Observation/{world.obs_b}"]))
    world.more_b.append(hidden)

    def document(i: str) -> httpx.Response:
        return smart.client.get(f"/fhir/Composition/{i}/$document", headers=attacker)

    assert_like_missing(document, hidden, world, status=404)
    # The same request with an admin token finds it: the 404 comes from the scope.
    admin = smart.client.get(f"/fhir/Composition/{hidden}/$document", headers=smart.headers(ADMIN))
    assert admin.status_code == 200, admin.text


def test_own_document_leaves_out_what_lies_in_another_compartment(
    smart: Smart, world: World, attacker: dict[str, str]
) -> None:
    own = create(
        smart, composition(world.a, [f"Observation/{world.obs_a}", f"Observation/{world.obs_b}"])
    )
    world.allow.add(world.obs_b)  # A's own Composition names B's Observation as an entry
    response = smart.client.get(f"/fhir/Composition/{own}/$document", headers=attacker)
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "document"
    seen = entry_ids(bundle)
    assert seen == {f"Composition/{own}", f"Patient/{world.a}", f"Observation/{world.obs_a}"}
    # An admin token gets B's Observation too, and B's Patient through its subject.
    admin = smart.client.get(f"/fhir/Composition/{own}/$document", headers=smart.headers(ADMIN))
    assert entry_ids(admin.json()) == seen | {
        f"Observation/{world.obs_b}",
        f"Patient/{world.b}",
    }


def test_a_token_without_composition_read_is_refused(smart: Smart, world: World) -> None:
    own = create(smart, composition(world.a, [f"Observation/{world.obs_a}"]))
    headers = smart.headers("patient/Observation.rs", world.a)
    response = smart.client.get(f"/fhir/Composition/{own}/$document", headers=headers)
    assert response.status_code == 403, response.text
    assert response.json()["resourceType"] == "OperationOutcome"
