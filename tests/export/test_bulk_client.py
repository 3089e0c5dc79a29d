"""Bulk Data round trip driven by a real Bulk Data client, smart-fetch
(`make bulk-client` installs it apart from the project's virtualenv), against the
uvicorn-served app on SQLite and PostgreSQL: system, Group, ``_typeFilter`` and ``_since``
exports with deletes, the NDJSON parsed back and compared with the database."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from fhir_service.api import create_app
from fhir_service.settings import Settings
from fhir_service.storage import SqlStore
from fhir_service.storage.access import AccessScope
from tests.export.conftest import SECRET
from tests.security.conftest import VITAL_SIGNS
from tests.served import serve

FULL_ACCESS = AccessScope.full()

SMART_FETCH = Path(__file__).parent / "bulk_client" / ".venv" / "bin" / "smart-fetch"
TYPES = "Patient,Observation"
"""smart-fetch exports the patient data types it knows (not Organization or Group)."""


@pytest.fixture
def smart_fetch() -> Path:
    """The client, or a failure in CI / a skip elsewhere when it is not installed."""
    if SMART_FETCH.exists():
        return SMART_FETCH
    reason = f"smart-fetch not installed at {SMART_FETCH}: run `make bulk-client`"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)
    return SMART_FETCH


@pytest.fixture
def base(database_url: str, tmp_path: Path) -> Iterator[str]:
    settings = Settings(
        database_url=database_url, export_dir=tmp_path / "exports", deid_secret=SECRET
    )
    with serve(create_app(settings)) as origin:
        yield f"{origin}/fhir"


def _fetch(client: Path, base: str, out: Path, *args: str) -> dict[str, list[dict[str, Any]]]:
    """Run ``smart-fetch bulk``; the resources it wrote, by file stem (``deleted/...`` too)."""
    command = [str(client), "bulk", "--fhir-url", base, "--no-compression", *args, str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=out.parent)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    found: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(out.rglob("*.ndjson")):
        if path.name == "log.ndjson":
            continue
        lines = [orjson.loads(line) for line in path.read_bytes().splitlines() if line]
        found.setdefault(str(path.relative_to(out).parent / path.stem.split(".")[0]), []).extend(
            lines
        )
    return found


def _create(http: httpx.Client, body: dict[str, Any]) -> str:
    response = http.post(f"/{body['resourceType']}", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _seed(http: httpx.Client) -> dict[str, Any]:
    patients = [
        _create(http, {"resourceType": "Patient", "name": [{"family": f"Lee{i}"}]})
        for i in range(3)
    ]
    observations = {}
    for patient in patients:
        for code in ("8867-4", "2339-0"):
            body = {
                "resourceType": "Observation",
                "status": "final",
                # a heart rate carries what the R4 vital signs profile requires
                **({"category": VITAL_SIGNS} if code == "8867-4" else {}),
                "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "subject": {"reference": f"Patient/{patient}"},
                "effectiveDateTime": "2022-03-01",
            }
            observations[_create(http, body)] = (patient, code)
    organization = _create(http, {"resourceType": "Organization", "name": "Clinic"})
    group = _create(
        http,
        {
            "resourceType": "Group",
            "type": "person",
            "actual": True,
            "member": [{"entity": {"reference": f"Patient/{p}"}} for p in patients[:2]],
        },
    )
    return {
        "patients": patients,
        "observations": observations,
        "organization": organization,
        "group": group,
    }


def _database(url: str) -> dict[tuple[str, str], dict[str, Any]]:
    store = SqlStore.open(url)
    try:
        with store.begin(FULL_ACCESS, readonly=True) as repo:
            return {
                (s.resource_type, s.id): s.resource
                for t in repo.counts()
                for s in repo.search(t, [])
                if s.resource is not None
            }
    finally:
        store.close()


def test_real_bulk_client_round_trip(
    smart_fetch: Path, base: str, database_url: str, tmp_path: Path
) -> None:
    with httpx.Client(base_url=base, timeout=30) as http:
        seeded = _seed(http)

        everything = _fetch(
            smart_fetch, base, tmp_path / "system", "--type", TYPES, "--no-default-filters"
        )
        exported = {(r["resourceType"], r["id"]): r for rs in everything.values() for r in rs}
        stored = _database(database_url)
        assert exported == {k: v for k, v in stored.items() if k[0] in TYPES.split(",")}
        assert len(exported) == 9

        members = _fetch(
            smart_fetch,
            base,
            tmp_path / "group",
            "--group",
            seeded["group"],
            "--type",
            TYPES,
            "--no-default-filters",
        )
        assert {r["id"] for r in members["Patient"]} == set(seeded["patients"][:2])
        assert {r["id"] for r in members["Observation"]} == {
            o for o, (p, _) in seeded["observations"].items() if p in seeded["patients"][:2]
        }

        filtered = _fetch(
            smart_fetch,
            base,
            tmp_path / "filtered",
            "--type",
            "Observation",
            "--type-filter",
            "Observation?code=http://loinc.org|2339-0",
        )
        assert {r["id"] for r in filtered["Observation"]} == {
            o for o, (_, code) in seeded["observations"].items() if code == "2339-0"
        }

        time.sleep(0.01)
        since = datetime.now(UTC).isoformat()
        time.sleep(0.01)
        changed = seeded["patients"][0]
        put = {"resourceType": "Patient", "id": changed, "gender": "other"}
        assert http.put(f"/Patient/{changed}", json=put).status_code == 200
        removed = next(iter(seeded["observations"]))
        assert http.delete(f"/Observation/{removed}").status_code in (200, 204)

    later = _fetch(
        smart_fetch,
        base,
        tmp_path / "since",
        "--type",
        TYPES,
        "--no-default-filters",
        "--since",
        since,
        "--since-mode",
        "updated",
    )
    assert [(r["id"], r["gender"]) for r in later["Patient"]] == [(changed, "other")]
    assert not later.get("Observation")
    deleted = [e["request"] for bundle in later["deleted/Bundle"] for e in bundle["entry"]]
    assert deleted == [{"method": "DELETE", "url": f"Observation/{removed}"}]
