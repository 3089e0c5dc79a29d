"""The /ui pages of a server in smart mode, in headless Chromium: without a token the API
answers 401 and the page says so; with an access token entered in the header form (got
from the token endpoint by ``fhir-service auth token``) the pages work; forgetting it
brings the 401 back. The token lives in the tab's sessionStorage only."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from playwright.sync_api import expect

from fhir_service.api import create_app
from fhir_service.cli.load import load_all, providers_first
from fhir_service.storage import SqlStore, upgrade
from tests.security.conftest import backend_client, smart_settings
from tests.served import free_port, serve
from tests.ui.conftest import EXAMPLE_CASE, Watched, screenshot


@dataclass
class SmartServer:
    origin: str
    client_id: str
    key_file: Path


@pytest.fixture
def smart_server(tmp_path: Path) -> Iterator[SmartServer]:
    """The example case served in smart mode, with one registered backend client."""
    url = f"sqlite:///{tmp_path / 'smart.sqlite3'}"
    upgrade(url)
    store = SqlStore.open(url)
    try:
        load_all(store, providers_first([EXAMPLE_CASE], anchor_date=date(2022, 3, 1)))
    finally:
        store.close()
    client_id, key_file = backend_client(url, tmp_path, "system/*.rs")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/fhir"
    with serve(create_app(smart_settings(url, tmp_path, base_url=base_url)), port=port) as origin:
        yield SmartServer(origin, client_id, key_file)


def _token(server: SmartServer, client_id: str | None = None) -> tuple[int, str]:
    """Run ``fhir-service auth token`` as a user would, in its own process."""
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("fhir-service")),
            "auth",
            "token",
            "--token-url",
            f"{server.origin}/auth/token",
            "--client-id",
            client_id or server.client_id,
            "--private-key",
            str(server.key_file),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.returncode, (result.stdout + result.stderr).strip()


def test_pages_use_the_token_entered_in_the_header(
    laptop: Watched, smart_server: SmartServer
) -> None:
    code, token = _token(smart_server)
    assert code == 0, token
    assert token.count(".") == 2  # a signed JWT
    page = laptop.page
    page.goto(f"{smart_server.origin}/ui")
    state = page.locator("#patients-state")
    expect(state).to_contain_text("did not list patients")
    assert page.inner_text("#token-state") == "no token"

    page.fill("#token-input", token)
    page.click("#token-form button[type=submit]")
    page.wait_for_selector(".patient-link")
    assert page.locator(".patient-link").count() == 1
    assert page.inner_text("#token-state") == "token in use"
    screenshot(page, "smart-token")
    page.click(".patient-link")
    page.wait_for_selector("main[data-ready='true']", state="attached", timeout=60_000)
    assert page.locator("#timeline .event").count() > 10

    page.goto(f"{smart_server.origin}/ui")
    page.wait_for_selector(".patient-link")
    page.click("#token-forget")
    expect(page.locator("#patients-state")).to_contain_text("did not list patients")
    assert page.locator(".patient-link").count() == 0


def test_token_command_reports_a_refusal(smart_server: SmartServer) -> None:
    code, output = _token(smart_server, client_id="no-such-client")
    assert code == 2
    assert "no token" in output
