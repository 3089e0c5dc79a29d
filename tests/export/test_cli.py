"""`fhir-service export`: files and manifest in a directory, plain and de-identified."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from fhir_service.cli import commands, export
from fhir_service.storage import SqlStore
from fhir_service.storage.access import AccessScope

FULL_ACCESS = AccessScope.full()

app = typer.Typer()


@app.callback()
def _root() -> None:
    """The export command on its own, as `fhir-service` registers it."""


export.register(app)


def _seed(url: str) -> str:
    store = SqlStore.open(url)
    try:
        with store.begin(FULL_ACCESS) as repo:
            patient = repo.create(
                {
                    "resourceType": "Patient",
                    "name": [{"family": "Okonkwo"}],
                    "birthDate": "1961-04-09",
                }
            ).stored
            repo.create(
                {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "heart rate"},
                    "subject": {"reference": f"Patient/{patient.id}"},
                    "effectiveDateTime": "2021-05-01",
                }
            )
        return patient.id
    finally:
        store.close()


def test_export_command(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert export in commands.MODULES
    patient_id = _seed(database_url)
    monkeypatch.setenv("FHIR_SERVICE_DEID_SECRET", "cli-secret")
    runner = CliRunner()
    plain = tmp_path / "plain"
    result = runner.invoke(
        app, ["export", "-o", str(plain), "--type", "Patient", "--database-url", database_url]
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((plain / "manifest.json").read_text())
    assert [(o["type"], o["count"]) for o in manifest["output"]] == [("Patient", 1)]
    line = json.loads((plain / manifest["output"][0]["url"]).read_text())
    assert line["id"] == patient_id and line["name"] == [{"family": "Okonkwo"}]

    deid = tmp_path / "deid"
    result = runner.invoke(
        app, ["export", "-o", str(deid), "--deidentify", "--database-url", database_url]
    )
    assert result.exit_code == 0, result.output
    text = "".join(p.read_text() for p in deid.glob("*.ndjson"))
    for original in (patient_id, "Okonkwo", "1961-04-09", "2021-05-01"):
        assert original not in text
    assert text.count("\n") == 2

    bad = runner.invoke(app, ["export", "-o", str(tmp_path / "x"), "--since", "noon"])
    assert bad.exit_code == 2


def test_export_command_filters_and_elements(database_url: str, tmp_path: Path) -> None:
    patient_id = _seed(database_url)
    runner = CliRunner()
    out = tmp_path / "subset"
    args = ["export", "-o", str(out), "--database-url", database_url]
    result = runner.invoke(
        app,
        [
            *args,
            "--type-filter",
            "Observation?status=amended",
            "--type-filter",
            "Patient?family=Okonkwo",
            "--elements",
            "Patient.birthDate",
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(o["type"], o["count"]) for o in manifest["output"]] == [("Patient", 1)]
    patient = json.loads((out / manifest["output"][0]["url"]).read_text())
    assert patient["id"] == patient_id and patient["birthDate"] == "1961-04-09"
    assert "name" not in patient and patient["meta"]["tag"][0]["code"] == "SUBSETTED"

    for wrong in (["--type-filter", "Observation?nope=1"], ["--elements", "Patient.nope"]):
        bad = runner.invoke(app, [*args, *wrong])
        assert bad.exit_code == 2, wrong
        assert "error:" in bad.output
