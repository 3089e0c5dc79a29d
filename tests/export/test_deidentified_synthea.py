"""De-identified export of generated (Synthea) patients leaks no name, identifier value,
id, phone, address or source date, and its references resolve inside the export."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from fhir_service.cli.load import load_bundle, providers_first
from fhir_service.storage import SqlStore
from fhir_service.storage.access import AccessScope
from tests.export.conftest import download, kick_off, wait_manifest

FULL_ACCESS = AccessScope.full()

ARCHIVE = "synthea-r4-300-patients.tar.xz"
PATIENTS = 2


def _strings(value: Any, key: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _strings(v, k)]
    if isinstance(value, list):
        return [p for v in value for p in _strings(v, key)]
    return [(key, value)] if isinstance(value, str) else []


def _load(url: str, archive: Path) -> list[dict[str, Any]]:
    store = SqlStore.open(url)
    try:
        patients = 0
        for name, bundle in providers_first([archive], anchor_date=date(2022, 3, 1)):
            if "Information" not in name:
                if patients == PATIENTS:
                    break
                patients += 1
            load_bundle(store, bundle)
        with store.begin(FULL_ACCESS, readonly=True) as repo:
            return [s.resource for t in repo.counts() for s in repo.search(t, []) if s.resource]
    finally:
        store.close()


def test_deidentified_synthea_leaks_nothing(
    client: TestClient, database_url: str, shared_data: Path
) -> None:
    source = _load(database_url, shared_data / ARCHIVE)
    patients = [r for r in source if r["resourceType"] == "Patient"]
    assert len(patients) == PATIENTS
    exported = download(
        client, wait_manifest(client, kick_off(client, "/fhir/$export?_deidentify=true"))
    )
    assert len(exported) == len(source)
    values = {v for r in exported for _, v in _strings(r)}
    # Whole string values and their words: a short number inside a hex pseudonym is no leak.
    words = values | {w for v in values for w in re.findall(r"[^\W_]+|[\w.-]+", v)}
    secrets = {r["id"] for r in source}
    for resource in source:
        for field in ("identifier", "name", "telecom", "address"):
            secrets |= {v for k, v in _strings(resource.get(field)) if k in ("value", "family")}
    for patient in patients:
        secrets |= {g for n in patient["name"] for g in n.get("given", [])}
    assert len(secrets) > len(source)
    # Values under five characters ('0', '10') are counters that also occur as date parts.
    leaked = sorted(s for s in secrets if len(s) >= 5 and s in words)
    assert leaked == [], leaked
    # Shifted dates may meet other events' dates in a dense record; birth dates must not.
    births = {p["birthDate"] for p in patients}
    shifted = {r["birthDate"] for r in exported if r["resourceType"] == "Patient"}
    assert len(shifted) == PATIENTS and not shifted & births
    present = {f"{r['resourceType']}/{r['id']}" for r in exported}
    checked = 0
    for resource in exported:
        contained = {f"#{c['id']}" for c in resource.get("contained", [])}
        for key, ref in _strings(resource):
            if key == "reference":
                assert ref in (contained if ref.startswith("#") else present), ref
                checked += 1
    assert checked > len(exported)
