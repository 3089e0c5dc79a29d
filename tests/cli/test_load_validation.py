"""`fhir-service load` validates what it writes (docs/validation.md#where-it-applies): under the
default (reject) a Bundle with an invalid resource fails and the others load; with
``--validate warn`` it loads and the resources with errors are counted. Real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from fhir_service.storage import upgrade

GOOD = {"resourceType": "Patient", "gender": "female", "name": [{"family": "Quill"}]}
BAD = {"resourceType": "Patient", "gender": "mail", "name": [{"family": "Zebediah"}]}


def _bundle(path: Path, *resources: dict[str, Any]) -> Path:
    entries = [{"resource": r, "request": {"method": "POST", "url": "Patient"}} for r in resources]
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries}))
    return path


def _load(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FHIR_SERVICE_VALIDATE_ON_WRITE"}
    return subprocess.run(
        [sys.executable, "-m", "fhir_service", "load", "--database-url", url, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env=env,
    )


def test_load_refuses_an_invalid_bundle_by_default_and_warn_loads_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'load.sqlite3'}"
    upgrade(url)
    good = _bundle(tmp_path / "good.json", GOOD)
    bad = _bundle(tmp_path / "bad.json", GOOD, BAD)

    refused = _load(url, str(good), str(bad))
    assert refused.returncode == 1, refused.stderr
    assert "Bundle.entry[1]: Patient is not valid" in refused.stderr
    assert "loaded 1 bundle(s), 1 entries" in refused.stdout

    warned = _load(url, "--validate", "warn", str(bad))
    assert warned.returncode == 0, warned.stderr
    assert "loaded 1 bundle(s), 2 entries" in warned.stdout
    assert "1 resource(s) stored with validation errors" in warned.stderr
