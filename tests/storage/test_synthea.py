"""Real-world loads: the Synthea Bundles in ../shared/data (see its README).

- the conditional-reference set: the providers Bundle (ifNoneExist) then 13
  patient Bundles whose references are ``Practitioner?identifier=...`` and alike;
- a sample of the 300-patient set: the hospital and practitioner Bundles and 10
  patient Bundles, which POST their Organization and Practitioner again.

After loading, no reference dangles, none is left conditional or urn:uuid, and
no provider is stored twice.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from fhir_service.cli.load import PROVIDER_TYPES, iter_bundles, load_all, providers_first
from fhir_service.fhir.references import iter_references, parse_reference
from fhir_service.storage import SqlStore
from fhir_service.storage.access import AccessScope
from fhir_service.storage.repository import Stored

FULL_ACCESS = AccessScope.full()

pytestmark = pytest.mark.shared_data
ANCHOR = date(2022, 3, 1)


def current_resources(store: SqlStore) -> list[Stored]:
    with store.begin(FULL_ACCESS, readonly=True) as repo:
        return [s for t in sorted(repo.counts()) for s in repo.search(t, [])]


def assert_no_dangling_references(stored: list[Stored]) -> int:
    known = {f"{s.resource_type}/{s.id}" for s in stored}
    checked = 0
    for s in stored:
        assert s.resource is not None
        for ref in iter_references(s.resource):
            if ref.startswith("#"):
                continue
            parsed = parse_reference(ref)
            assert parsed is not None, f"{s.resource_type}/{s.id} keeps reference {ref}"
            assert parsed.relative in known, f"{s.resource_type}/{s.id} -> {ref} dangles"
            checked += 1
    return checked


def assert_no_duplicate_providers(stored: list[Stored]) -> None:
    keys = Counter(
        (s.resource_type, i.get("system"), i.get("value"))
        for s in stored
        if s.resource_type in PROVIDER_TYPES and s.resource is not None
        for i in s.resource.get("identifier", [])[:1]
    )
    duplicated = {k: n for k, n in keys.items() if n > 1}
    assert duplicated == {}


def test_conditional_reference_set(store: SqlStore, shared_data: Path) -> None:
    archive = shared_data / "synthea-bulk-10-patients-transactions.tar.xz"
    report = load_all(store, providers_first([archive], anchor_date=ANCHOR))
    assert report.failed == []
    assert report.bundles == 14
    stored = current_resources(store)
    assert len(stored) == 7160
    assert assert_no_dangling_references(stored) > 10_000
    assert_no_duplicate_providers(stored)
    # The providers Bundle again: entries with ifNoneExist match what exists; the
    # PractitionerRoles carry neither ifNoneExist nor an identifier, so they are
    # plain POSTs and create new resources, as the spec prescribes.
    providers = [b for b in iter_bundles(archive, anchor_date=ANCHOR) if "providers" in b[0]]
    entries = providers[0][1]["entry"]
    conditional = sum(1 for e in entries if e["request"].get("ifNoneExist"))
    again = load_all(store, providers)
    assert again.statuses == Counter(
        {"200 OK": conditional, "201 Created": len(entries) - conditional}
    )
    assert len(current_resources(store)) == 7160 + len(entries) - conditional
    assert_no_duplicate_providers(current_resources(store))


def test_sample_of_the_300_patient_set(store: SqlStore, shared_data: Path) -> None:
    archive = shared_data / "synthea-r4-300-patients.tar.xz"
    patients = 0
    sample = []
    for name, bundle in providers_first([archive], anchor_date=ANCHOR):
        if "Information" in name:
            sample.append((name, bundle))
        elif patients < 10:
            sample.append((name, bundle))
            patients += 1
        else:
            break
    report = load_all(store, sample)
    assert report.failed == []
    assert report.bundles == 12
    stored = current_resources(store)
    assert_no_duplicate_providers(stored)
    assert assert_no_dangling_references(stored) > 1000
    counts = Counter(s.resource_type for s in stored)
    assert counts["Organization"] == counts["Practitioner"] == 102
    assert counts["Patient"] == 10
