"""`fhir-service db upgrade|status` and `fhir-service load` on a real database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from fhir_service.cli import db, load
from fhir_service.storage import SqlStore
from fhir_service.storage.access import AccessScope

FULL_ACCESS = AccessScope.full()


@pytest.fixture
def app() -> typer.Typer:
    cli = typer.Typer()
    db.register(cli)
    load.register(cli)
    return cli


def write_bundles(tmp_path: Path) -> list[Path]:
    org = {"system": "http://hospital.example/org", "value": "IVC-CENTER"}
    providers = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": {"resourceType": "Organization", "identifier": [org]},
                "request": {"method": "POST", "url": "Organization"},
            }
        ],
    }
    patient = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "fullUrl": "urn:uuid:7d0f6a4e-8e59-4b7a-b1a8-1f2d1f7a9c10",
                "resource": {"resourceType": "Patient", "id": "ivc-1", "gender": "female"},
            },
            {
                "resource": {
                    "resourceType": "Organization",
                    "identifier": [org],
                    "name": "repeated provider",
                },
            },
        ],
    }
    paths = [tmp_path / "b-patient.json", tmp_path / "a-providers.json"]
    paths[0].write_text(json.dumps(patient))
    paths[1].write_text(json.dumps(providers))
    return paths


def test_db_upgrade_then_load(app: typer.Typer, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    runner = CliRunner()
    behind = runner.invoke(app, ["db", "status", "--database-url", url])
    assert behind.exit_code == 1
    refused = runner.invoke(app, ["load", "--database-url", url, str(tmp_path)])
    assert refused.exit_code == 2 and "fhir-service db upgrade" in refused.output
    assert runner.invoke(app, ["db", "upgrade", "--database-url", url]).exit_code == 0
    assert runner.invoke(app, ["db", "status", "--database-url", url]).exit_code == 0
    write_bundles(tmp_path)
    loaded = runner.invoke(app, ["load", "--database-url", url, str(tmp_path)])
    assert loaded.exit_code == 0, loaded.output
    assert "loaded 2 bundle(s), 3 entries" in loaded.output
    store = SqlStore.open(url)
    try:
        with store.begin(FULL_ACCESS, readonly=True) as repo:
            assert repo.counts() == {"Organization": 1, "Patient": 1}
            assert repo.read("Patient", "ivc-1").version_id == 1
    finally:
        store.close()


def test_load_reports_bad_input(app: typer.Typer, tmp_path: Path, sqlite_url: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"resourceType": "Patient"}')
    result = CliRunner().invoke(app, ["load", "--database-url", sqlite_url, str(bad)])
    assert result.exit_code == 2
    assert "not a FHIR Bundle" in result.output
    missing = CliRunner().invoke(app, ["load", "--database-url", sqlite_url, "nope.json"])
    assert missing.exit_code == 2
