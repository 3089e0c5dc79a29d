"""De-identified export of the IVC case over HTTP: nothing identifying survives, references
still resolve, dates move by one offset per patient (rules in fhir_service/export/deidentify.py)."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

import orjson
from fastapi.testclient import TestClient

from fhir_service.export.deidentify import Deidentifier
from fhir_service.storage import SqlStore
from fhir_service.storage.access import AccessScope
from tests.export.conftest import SECRET, download, kick_off, wait_manifest
from tests.sync.conftest import case_bundle

FULL_ACCESS = AccessScope.full()

DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _strings(value: Any, key: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _strings(v, k)]
    if isinstance(value, list):
        return [p for v in value for p in _strings(v, key)]
    return [(key, value)] if isinstance(value, str) else []


def _single_dates(resource: dict[str, Any]) -> dict[str, date]:
    """The full dates of ``resource`` under element names that occur once in it."""
    found: dict[str, list[str]] = {}
    for key, value in _strings(resource):
        if DATE.match(value):
            found.setdefault(key, []).append(value)
    return {k: date.fromisoformat(v[0][:10]) for k, v in found.items() if len(v) == 1}


def _load_case(database_url: str) -> list[dict[str, Any]]:
    store = SqlStore.open(database_url)
    try:
        with store.begin(FULL_ACCESS) as repo:
            repo.transaction(case_bundle())
        with store.begin(FULL_ACCESS) as repo:
            # The published case is anonymous; give its patient the contact data of a real record.
            for stored in repo.search("Patient", []):
                assert stored.resource is not None
                patient = dict(stored.resource)
                patient["name"] = [{"family": "Quenneville", "given": ["Marisol"]}]
                patient["telecom"] = [{"system": "phone", "value": "+1-555-0142"}]
                patient["address"] = [{"city": "Lakewood", "postalCode": "80226"}]
                repo.update("Patient", stored.id, patient)
        with store.begin(FULL_ACCESS, readonly=True) as repo:
            counts = repo.counts()
            return [s.resource for t in counts for s in repo.search(t, []) if s.resource]
    finally:
        store.close()


def test_deidentified_case_leaks_nothing(client: TestClient, database_url: str) -> None:
    source = _load_case(database_url)
    assert any(r["resourceType"] == "Patient" for r in source)
    manifest = wait_manifest(client, kick_off(client, "/fhir/$export?_deidentify=true"))
    exported = download(client, manifest)
    assert len(exported) == len(source)
    text = orjson.dumps(exported).decode()

    ids = {r["id"] for r in source}
    identifiers = {v for r in source for k, v in _strings(r.get("identifier")) if k == "value"}
    names = {
        part
        for r in source
        for n in r.get("name", [])
        if isinstance(n, dict)
        for part in [*n.get("given", []), n.get("family", "")]
        if part
    }
    dates = {v[:10] for r in source for _, v in _strings(r) if DATE.match(v)}
    assert ids and identifiers and names and dates
    for secret in ids | identifiers | names | {"+1-555-0142", "Lakewood", "80226"}:
        assert secret not in text, secret
    # Every date moved back by a year or two. (Comparing against all source dates at once
    # would fail by chance: a moved date may fall on the day of another event.)
    pseudonyms = Deidentifier(SECRET, lambda _: [], reference_year=2026)
    by_id = {(r["resourceType"], r["id"]): r for r in exported}
    moved = 0
    for original in source:
        twin = by_id[
            (
                original["resourceType"],
                pseudonyms.pseudonym(original["resourceType"], original["id"]),
            )
        ]
        before = _single_dates(original)
        after = _single_dates(twin)
        for key in before.keys() & after.keys():
            assert 366 <= (before[key] - after[key]).days <= 731, (original["resourceType"], key)
            moved += 1
    assert moved > 20

    present = {f"{r['resourceType']}/{r['id']}" for r in exported}
    references = [v for r in exported for k, v in _strings(r) if k == "reference"]
    assert references and all(ref in present for ref in references)


def test_dates_shift_by_one_offset_per_patient(client: TestClient, database_url: str) -> None:
    source = _load_case(database_url)
    manifest = wait_manifest(client, kick_off(client, "/fhir/$export?_deidentify=true"))
    exported = download(client, manifest)
    by_type_order: dict[str, list[dict[str, Any]]] = {}
    for resource in exported:
        by_type_order.setdefault(resource["resourceType"], []).append(resource)
    shifts = set()
    for original in source:
        if "effectiveDateTime" not in original and "onsetDateTime" not in original:
            continue
        key = "effectiveDateTime" if "effectiveDateTime" in original else "onsetDateTime"
        same_type = by_type_order[original["resourceType"]]
        # The export keeps each type's database order; match by the codings (the coded
        # part of the code; its free text is removed).
        codings = (original.get("code") or {}).get("coding")
        candidates = [r for r in same_type if (r.get("code") or {}).get("coding") == codings]
        if len(candidates) != 1 or key not in candidates[0]:
            continue
        before = date.fromisoformat(original[key][:10])
        after = date.fromisoformat(candidates[0][key][:10])
        shifts.add((before - after).days)
        assert original[key][10:] == candidates[0][key][10:]
    assert len(shifts) == 1, shifts
    assert 366 <= shifts.pop() <= 730
    datetime.fromisoformat(manifest["transactionTime"])
