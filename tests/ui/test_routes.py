"""The /ui routes without a browser: pages, their security policy, assets and errors."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fhir_service.api import create_app
from fhir_service.settings import Settings
from tests.api.helpers import assert_outcome
from tests.ui.conftest import EXAMPLE_CASE

PAGES = ["/ui", "/ui/patients/example-1", "/ui/validate", "/ui/status"]


@pytest.fixture
def client(sqlite_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=sqlite_url, base_url=None))) as test_client:
        yield test_client


@pytest.mark.parametrize("path", PAGES)
def test_pages_are_html_with_a_same_origin_policy(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert "default-src 'none'" in policy
    # Every script and style sheet is served by this app: no external address.
    for src in re.findall(r'(?:src|href)="([^"]+)"', response.text):
        assert src.startswith(("/", "data:", "#")), src


def test_timeline_page_carries_the_patient_id(client: TestClient) -> None:
    assert 'data-patient-id="example-1"' in client.get("/ui/patients/example-1").text


def test_assets_are_served_with_their_media_types(client: TestClient) -> None:
    page = client.get("/ui/patients/example-1").text
    assets = re.findall(r'"(/ui/static/[^"]+)"', page)
    assert "/ui/static/timeline.js" in assets and "/ui/static/ui.css" in assets
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset
        expected = "text/css" if asset.endswith(".css") else "text/javascript"
        assert response.headers["content-type"].startswith(expected)


def test_unknown_asset_is_a_404_outcome(client: TestClient) -> None:
    assert_outcome(client.get("/ui/static/nothing.js"), 404, "nothing.js")
    assert_outcome(client.get("/ui/static/..%2Fpages.py"), 404)


def test_bad_patient_id_is_a_400_outcome(client: TestClient) -> None:
    response = client.get("/ui/patients/" + "x" * 65)
    assert 400 <= response.status_code < 500
    assert response.json()["resourceType"] == "OperationOutcome"


def test_demo_prints_the_ui_address(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "fhir_service", "demo", "--no-serve", "--port", "8123"]
    result = subprocess.run(
        [*command, "--case", str(EXAMPLE_CASE)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "http://127.0.0.1:8123/ui" in result.stdout
